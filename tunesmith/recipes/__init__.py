"""Training recipes: name -> function taking a RunConfig and returning the run directory."""

from tunesmith.recipes import classify, sft

RECIPES = {"sft": sft.run, "classify": classify.run}
