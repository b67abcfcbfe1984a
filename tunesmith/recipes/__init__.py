"""Training recipes: name -> function taking a RunConfig and returning the run directory."""

from tunesmith.recipes import classify, preference, sft

RECIPES = {"sft": sft.run, "classify": classify.run, "dpo": preference.run, "kto": preference.run,
           "reward": preference.run}
