"""Training recipes: name -> function taking a RunConfig and returning the run directory.

Recipes are imported when used, so a recipe's heavy imports (trl, opacus) never slow the others.
"""

from __future__ import annotations

import functools
import importlib

from tunesmith.recipes.registry import _ENTRY, KINDS

__all__ = ["KINDS", "preflight", "recipe"]


def recipe(name: str):
    """The training function of recipe `name`: run(cfg, show_progress=True, callbacks=()) -> run directory.
    `auto` hyperparameters are resolved first (tunesmith/autotune.py), so every recipe sees values."""
    from tunesmith.models.quant import quiet_bitsandbytes

    quiet_bitsandbytes()  # peft imports bitsandbytes when installed: drop its hint about a kernel we never use
    module, func = _ENTRY[name].split(":")
    train = getattr(importlib.import_module(f"tunesmith.recipes.{module}"), func)

    @functools.wraps(train)
    def run(cfg, show_progress: bool = True, callbacks: tuple = ()):
        from tunesmith import autotune
        from tunesmith.runs import is_main_process

        cfg = autotune.resolve(cfg)
        if cfg.auto and show_progress and is_main_process():
            print("tunesmith: auto: " + "\ntunesmith: auto: ".join(autotune.describe(cfg)), flush=True)
        if cfg.train.time_budget is not None:
            callbacks = (*callbacks, autotune.budget_callback(cfg.train.time_budget))
        return train(cfg, show_progress=show_progress, callbacks=callbacks)

    return run


def preflight(cfg) -> None:
    """The recipe's own refusals that need code but no model (reward functions import, an unfinished
    DP run cannot resume, DP runs in one process): run by `tunesmith validate` and at the start of
    training. Config-only rules live in the config's checks instead."""
    if cfg.recipe in ("grpo", "ppo"):
        from tunesmith.recipes.rewards import check

        check(cfg)
    if cfg.train.report_to:
        from tunesmith.tracking import check as check_trackers

        check_trackers(cfg.train.report_to)
    if cfg.privacy.enabled:
        from tunesmith.recipes.dp import refuse

        refuse(cfg)
