"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's lr_find): a few
dozen steps on a throwaway copy of the run with the rate growing exponentially, and the rate
picked from the loss curve. Optional (`train.lr_range_test: true` with `learning_rate: auto`).

The copy trains with the run's own recipe, data, batch and method; only its length, schedule and
output folder differ, and it leaves nothing behind but the curve, which the real run keeps as
lr_range.json. The pick is the rate at the lowest smoothed loss divided by 10, kept within 10x of
the rule's value (a short, noisy curve must not move a run far from measured defaults).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

START, END = 1e-6, 1e-1  # the swept range
STEPS = 40
WINDOW = 5  # points in the centred mean that smooths the loss curve
DIVERGED = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
RANGE_RECIPES = ("sft", "cpt", "classify", "dpo", "kto", "orpo", "simpo", "reward")  # Trainer-based loops
CURVE_FILE = "lr_range.json"


def rate_at(step: int, steps: int = STEPS) -> float:
    """The swept rate at `step` (0-based) of `steps`: START to END, exponentially."""
    return START * (END / START) ** (step / max(steps - 1, 1))


def pick(curve: list[dict], rule: float) -> tuple[float, str]:
    """(rate, why) from [{lr, loss}] points in sweep order."""
    points = [p for p in curve if math.isfinite(p["loss"])]
    if len(points) < 5:
        return rule, f"range test gave {len(points)} usable points: kept the rule's {rule:g}"
    losses = [p["loss"] for p in points]
    # a centred mean over WINDOW points: noise is averaged out without the lag of a running average
    half = WINDOW // 2
    smoothed = [sum(losses[max(0, i - half):i + half + 1]) / len(losses[max(0, i - half):i + half + 1])
                for i in range(len(losses))]
    best = min(range(len(points)), key=smoothed.__getitem__)
    lr = points[best]["lr"] / 10
    low, high = rule / 10, rule * 10
    chosen = float(f"{min(high, max(low, lr)):.3g}")
    clip = "" if low <= lr <= high else f", clipped to within 10x of the rule's {rule:g}"
    return chosen, (f"range test: lowest smoothed loss {smoothed[best]:.4g} at {points[best]['lr']:.3g}; "
                    f"/10 = {lr:.3g}{clip}")


def _callback(curve: list[dict], steps: int):
    from transformers import TrainerCallback

    class Sweep(TrainerCallback):
        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            for group in optimizer.param_groups:
                group["lr"] = rate_at(state.global_step, steps)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                curve.append({"step": state.global_step, "lr": rate_at(state.global_step - 1, steps),
                              "loss": float(logs["loss"])})
                best = min(p["loss"] for p in curve)
                if len(curve) > 5 and logs["loss"] > DIVERGED * best:
                    control.should_training_stop = True
            return control

    return Sweep()


def wanted(cfg) -> bool:
    """A range test is asked for and the rate is still the rule's (not given, not already picked)."""
    rule = cfg.auto.get("train.learning_rate", "")
    return cfg.train.lr_range_test and bool(rule) and "range test" not in rule


def run(cfg, steps: int = STEPS) -> tuple[object, list[dict]]:
    """(cfg with the picked learning rate and the rule in cfg.auto, the curve); `cfg` (resolved by
    autotune.resolve) and no curve when no range test is wanted."""
    from tunesmith.recipes import recipe

    if not wanted(cfg):
        return cfg, []
    if cfg.recipe not in RANGE_RECIPES or cfg.privacy.enabled:
        why = cfg.auto["train.learning_rate"] + f"; no range test for {'DP' if cfg.privacy.enabled else cfg.recipe}"
        return dataclasses.replace(cfg, auto={**cfg.auto, "train.learning_rate": why}), []
    curve: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tunesmith-lr-range-") as tmp:
        train = dataclasses.replace(cfg.train, max_steps=steps, lr_scheduler="constant", warmup_ratio=0.0,
                                    eval_steps=0, early_stopping_patience=0, save_steps=10 * steps,
                                    logging_steps=1, time_budget=None, lr_range_test=False, learning_rate=START)
        copy = dataclasses.replace(cfg, name="lr-range", output_dir=tmp, overwrite=True, train=train,
                                   eval=dataclasses.replace(cfg.eval, suite=None))
        recipe(cfg.recipe)(copy, show_progress=False, callbacks=(_callback(curve, steps),))
    lr, why = pick(curve, cfg.train.learning_rate)
    train = dataclasses.replace(cfg.train, learning_rate=lr)
    return dataclasses.replace(cfg, train=train, auto={**cfg.auto, "train.learning_rate": why}), curve


def keep(run_dir: Path, curve: list[dict], chosen: float) -> None:
    """Write the curve into the run directory."""
    (Path(run_dir) / CURVE_FILE).write_text(json.dumps({"start": START, "end": END, "chosen": chosen,
                                                        "points": curve}, indent=1) + "\n")
