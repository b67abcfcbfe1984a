"""Training recipes: name -> function taking a RunConfig and returning the run directory.

Recipes are imported when used, so a recipe's heavy imports (trl, opacus) never slow the others.
"""

from __future__ import annotations

import importlib

# recipe -> "module:function" under tunesmith.recipes
_ENTRY = {"sft": "sft:run", "cpt": "sft:run", "classify": "classify:run", "dpo": "preference:run",
          "kto": "preference:run", "orpo": "preference:run", "simpo": "preference:run",
          "reward": "preference:run", "grpo": "rl:run_grpo", "ppo": "rl:run_ppo"}

# recipe -> the record kinds (data/formats.py) it trains on; data validation checks them up front
KINDS = {"sft": ("chat", "classification"), "cpt": ("text",), "classify": ("classification",),
         "dpo": ("preference",), "kto": ("kto",), "orpo": ("preference",), "simpo": ("preference",),
         "reward": ("preference",), "grpo": ("chat", "prompt"), "ppo": ("chat", "prompt")}


def recipe(name: str):
    """The training function of recipe `name`."""
    from tunesmith.models.quant import quiet_bitsandbytes

    quiet_bitsandbytes()  # peft imports bitsandbytes when installed: drop its hint about a kernel we never use
    module, func = _ENTRY[name].split(":")
    return getattr(importlib.import_module(f"tunesmith.recipes.{module}"), func)


def preflight(cfg) -> None:
    """The recipe's own refusals that need code but no model (reward functions import, an unfinished
    DP run cannot resume): run by `tunesmith validate` and at the start of training. Config-only
    rules live in the config's checks instead."""
    if cfg.recipe in ("grpo", "ppo"):
        from tunesmith.recipes.rl import check

        check(cfg)
