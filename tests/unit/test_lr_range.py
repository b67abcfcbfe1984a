"""The learning-rate range test: the pick on known curves, and a real short test on the tiny model."""

from __future__ import annotations

import json
import math

import pytest
import yaml

import tunesmith
from tunesmith import lr_range
from tunesmith.runs import read_manifest


def curve(loss_of_lr, steps=lr_range.STEPS):
    return [{"step": i + 1, "lr": lr_range.rate_at(i, steps), "loss": loss_of_lr(lr_range.rate_at(i, steps))}
            for i in range(steps)]


def test_the_sweep_runs_from_start_to_end_exponentially():
    rates = [lr_range.rate_at(i) for i in range(lr_range.STEPS)]
    assert rates[0] == pytest.approx(lr_range.START) and rates[-1] == pytest.approx(lr_range.END)
    ratios = {round(b / a, 9) for a, b in zip(rates, rates[1:])}
    assert len(ratios) == 1  # a constant factor per step


def test_pick_is_a_tenth_of_the_lowest_loss_rate():
    # a bowl with its bottom at 1e-3 (in log space), with alternating noise the smoothing averages out
    noisy = curve(lambda r: (math.log10(r) + 3) ** 2 + 1)
    for i, p in enumerate(noisy):
        p["loss"] += 0.3 * (-1) ** i
    lr, why = lr_range.pick(noisy, rule=3e-4)
    assert lr == pytest.approx(1e-4, rel=0.35) and "/10" in why


def test_pick_stays_within_ten_times_the_rule():
    lr, why = lr_range.pick(curve(lambda r: -math.log10(r)), rule=1e-4)  # still falling at the end: 1e-1 / 10
    assert lr == pytest.approx(1e-3) and "clipped" in why


def test_too_short_a_curve_keeps_the_rule():
    assert lr_range.pick(curve(lambda r: 1.0)[:3], rule=2e-4)[0] == 2e-4
    nan = curve(lambda r: float("nan"))
    assert lr_range.pick(nan, rule=2e-4)[0] == 2e-4


def test_a_run_with_the_range_test_keeps_its_curve(tiny_config):
    tiny_config["train"] = {"max_steps": 3, "batch_size": 4, "precision": "fp32", "logging_steps": 1,
                            "lr_range_test": True}
    run_dir = tunesmith.train(tiny_config, show_progress=False)
    kept = json.loads((run_dir / lr_range.CURVE_FILE).read_text())
    assert len(kept["points"]) >= 5 and kept["points"][0]["lr"] < kept["points"][-1]["lr"]
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["train"]["learning_rate"] == kept["chosen"]
    assert read_manifest(run_dir)["auto"]["train.learning_rate"].startswith("range test")
    assert not (run_dir.parent / "lr-range").exists()  # the throwaway copy left nothing beside the run


def test_resuming_an_unfinished_run_keeps_the_rate_it_picked(tiny_config):
    from tunesmith import autotune
    from tunesmith.config import load_config
    from tunesmith.runs import MANIFEST_FILE, last_checkpoint

    tiny_config["train"] = {"max_steps": 3, "batch_size": 4, "precision": "fp32", "save_steps": 2,
                            "lr_range_test": True}
    run_dir = tunesmith.train(tiny_config, show_progress=False)
    chosen = json.loads((run_dir / lr_range.CURVE_FILE).read_text())["chosen"]
    manifest = read_manifest(run_dir)
    manifest["status"] = "running"  # as if the run had been killed after its checkpoint
    (run_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert last_checkpoint(run_dir)
    again = autotune.resumed(load_config(tiny_config))
    assert again.train.learning_rate == chosen and again.auto["train.learning_rate"].startswith("range test")
    assert autotune.resolve(again).train.batch_size == 4
