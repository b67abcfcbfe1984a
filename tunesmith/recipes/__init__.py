"""Training recipes: name -> function taking a RunConfig and returning the run directory."""

from tunesmith.recipes import sft

RECIPES = {"sft": sft.run}
