"""auto hyperparameters: each rule on known shapes, resolution into config and manifest, the budget."""

from __future__ import annotations

import json

import pytest
import yaml

import tunesmith
from tunesmith import autotune
from tunesmith.autotune import DataShape
from tunesmith.config import load_config
from tunesmith.runs import read_manifest

AUTO_KEYS = ("epochs", "batch_size", "learning_rate", "eval_steps", "early_stopping_patience")


def cfg(recipe="sft", method="lora", **train):
    return load_config({"recipe": recipe, "data": {"train": "/abs/t.jsonl"}, "train": {"method": method, **train}})


@pytest.fixture(autouse=True)
def cpu(monkeypatch):
    monkeypatch.setattr(autotune, "_device", lambda: "cpu")


@pytest.mark.parametrize("rows,median,expected", [
    (1200, 8, 32),     # short rows: capped at 32
    (1200, 100, 16),   # 2048 // 100 = 20 -> 16
    (1200, 300, 4),    # 2048 // 300 = 6 -> 4
    (40, 50, 4),       # a small set: at least 8 steps per epoch (40 // 8 = 5 -> 4)
    (3, 50, 1),
])
def test_batch_size_from_tokens_per_batch_and_rows(rows, median, expected):
    b, why = autotune.batch_size(cfg(), DataShape(rows, median, median, False))
    assert b == expected and "power of 2" in why


def test_grpo_batches_hold_whole_groups():
    c = load_config({"recipe": "grpo", "data": {"train": "/abs/t.jsonl"}, "rl": {"num_generations": 6,
                                                                               "reward_functions": ["r.py:f"]}})
    b, why = autotune.batch_size(c, DataShape(1000, 60, 60, False))
    assert b % 6 == 0 and "num_generations=6" in why


@pytest.mark.parametrize("recipe,method,batch,expected", [
    ("sft", "lora", 16, 5e-4),
    ("sft", "lora", 4, 2.5e-4),       # sqrt(4/16) = 0.5
    ("sft", "lora", 64, 1e-3),        # sqrt(64/16) = 2
    ("sft", "lora", 256, 1e-3),       # clipped at 2x
    ("sft", "full", 16, 2e-5),
    ("classify", "full", 32, 4.24e-5),
    ("dpo", "lora", 16, 5e-5),
    ("sft", "vera", 16, 1e-2),        # its own scale, not LoRA's
])
def test_learning_rate_per_recipe_method_and_batch(recipe, method, batch, expected):
    lr, why = autotune.learning_rate(cfg(recipe, method), batch)
    assert lr == pytest.approx(expected, rel=1e-2) and why


@pytest.mark.parametrize("rows,expected", [(50, 10.0), (100, 6.0), (1000, 3.0), (20_000, 1.25)])
def test_sft_epochs_scale_with_the_number_of_rows(rows, expected):
    e, why = autotune.epochs(cfg(), DataShape(rows, 50, 50, False))
    assert e == expected and str(rows) in why


def test_evaluation_and_early_stopping_only_with_validation_and_enough_steps():
    with_val, without = DataShape(400, 50, 50, True), DataShape(400, 50, 50, False)
    out = autotune.evaluation(cfg(), with_val, 80)
    assert out["train.eval_steps"][0] == 10 and out["train.early_stopping_patience"][0] == autotune.PATIENCE
    out = autotune.evaluation(cfg(), without, 80)
    assert out["train.eval_steps"][0] == 0 and out["train.early_stopping_patience"][0] == 0
    assert autotune.evaluation(cfg(), with_val, 10)["train.eval_steps"][0] == 0  # too short to evaluate often
    assert autotune.evaluation(cfg("dpo"), with_val, 80)["train.early_stopping_patience"][0] == 0


def test_resolve_fills_every_auto_and_keeps_explicit_values():
    c = cfg(batch_size=4)
    out = autotune.resolve(c, DataShape(300, 60, 90, True))
    assert out.train.batch_size == 4 and "train.batch_size" not in out.auto
    assert out.train.learning_rate == pytest.approx(2.5e-4)
    assert out.train.epochs == 3.0 and out.train.eval_steps == 28  # 3 x 75 steps / 8
    assert set(out.auto) == {"train.learning_rate", "train.epochs", "train.eval_steps",
                             "train.early_stopping_patience"}
    assert not autotune.pending(out)
    assert autotune.resolve(out) is out  # nothing left to resolve
    lines = autotune.describe(out)
    assert any(line.startswith("train.learning_rate = 0.00025 (") for line in lines)


def test_max_steps_sets_the_length_when_epochs_are_auto():
    out = autotune.resolve(cfg(max_steps=12), DataShape(300, 60, 90, False))
    assert out.train.epochs == 1.0 and "max_steps=12" in out.auto["train.epochs"]


def test_a_run_writes_resolved_values_and_their_rules(tiny_config):
    tiny_config["train"] = {"max_steps": 2, "precision": "fp32", "logging_steps": 1}  # the rest: auto
    run_dir = tunesmith.train(tiny_config, show_progress=False)
    written = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]
    assert all(written[k] != "auto" for k in AUTO_KEYS), written
    manifest = read_manifest(run_dir)
    assert set(manifest["auto"]) >= {"train.batch_size", "train.learning_rate", "train.epochs"}
    assert written["batch_size"] == 2  # 18 training rows: at least 8 steps per epoch -> 2
    # the written config is the same run again: nothing is auto any more
    assert not autotune.pending(load_config(run_dir / "config.yaml"))


def test_validate_prints_the_values_the_run_will_use(tiny_config, tmp_path, capsys):
    from tunesmith.cli import main

    tiny_config["train"] = {"precision": "fp32"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "auto values" in out and "train.learning_rate = 0.000" in out and "train.epochs = " in out
    assert main(["validate", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train"]["batch_size"] == report["auto"]["train.batch_size"]["value"] != "auto"


def test_budget_callback_stops_the_run(monkeypatch):
    from transformers import TrainerControl, TrainerState

    clock = iter([0.0, 30.0, 70.0])
    monkeypatch.setattr(autotune.time, "monotonic", lambda: next(clock))
    cb = autotune.budget_callback(1.0)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(None, state, control)
    assert not cb.on_step_end(None, state, control).should_training_stop
    out = cb.on_step_end(None, state, control)
    assert out.should_training_stop and out.should_save


def test_fit_budget_lowers_max_steps_from_the_estimate(monkeypatch):
    from tunesmith import estimate

    monkeypatch.setattr(estimate, "estimate", lambda c: {"supported": True, "seconds": 620.0, "steps": 100,
                                                         "seconds_per_step": 6.0})
    c = autotune.resolve(cfg(time_budget=5.0), DataShape(800, 60, 90, False))
    out = estimate.fit_budget(c)
    # (300 s - 20 s fixed) / 6 s per step x 0.9 = 42 steps
    assert out.train.max_steps == 42 and "train.max_steps" in out.auto
    assert estimate.fit_budget(out) is out
    fits = estimate.fit_budget(autotune.resolve(cfg(time_budget=20.0), DataShape(800, 60, 90, False)))
    assert fits.train.max_steps == -1 and "fits" in fits.auto["train.time_budget"]
