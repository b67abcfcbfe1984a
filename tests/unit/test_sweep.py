"""tunesmith.sweep: the search space checked up front, real sweeps on the tiny model, pruning, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

import tunesmith
from tunesmith.errors import TunesmithError
from tunesmith.sweep import Range, check_space, parse_range, pruning_callback, run_sweep

ROOT = Path(__file__).resolve().parents[2]


def with_sweep(cfg: dict, **sweep) -> dict:
    return {**cfg, "sweep": sweep}


def quick(cfg: dict) -> dict:
    """Trials of 2 steps on batches of 2, evaluated on 2 rows after each step, no checkpoints: a few
    seconds each, so a whole sweep fits in a unit test."""
    return {**cfg, "data": {**cfg["data"], "validation_fraction": 0.1},
            "train": {**cfg["train"], "max_steps": 2, "batch_size": 2, "eval_steps": 1, "save_steps": 100}}


# --------------------------------------------------------------------------- the space


@pytest.mark.parametrize("text, expected", [
    ("loguniform(1e-5, 1e-3)", Range("loguniform", (1e-5, 1e-3))),
    ("uniform(0, 0.1)", Range("uniform", (0.0, 0.1))),
    (" int( 2 , 8 ) ", Range("int", (2, 8))),
    ("choice(8, 16, 32)", Range("choice", (8, 16, 32))),
    ("choice(cosine, linear)", Range("choice", ("cosine", "linear"))),
    ("choice(true, false)", Range("choice", (True, False))),
])
def test_parse_range_reads_every_kind(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("text, says", [
    ("1e-4", "not of the form"),
    ("logunifrm(1e-5, 1e-3)", "did you mean 'loguniform'"),
    ("loguniform(0, 1e-3)", "positive low end"),
    ("uniform(0.2, 0.1)", "low 0.2 is not below high 0.1"),
    ("uniform(0.1)", "two numbers"),
    ("uniform(a, b)", "two numbers"),
    ("int(1.5, 4)", "two whole numbers"),
    ("choice()", "no options"),
    ("choice(8, 8)", "twice"),
    ("choice([a, b])", "single values"),
    ("choice(a, [)", "do not parse"),
])
def test_parse_range_refuses_bad_ranges(text, says):
    with pytest.raises(ValueError, match=re_escape(says)):
        parse_range(text)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_every_space_problem_is_reported_at_once(tiny_config):
    space = {"train.learnin_rate": "loguniform(1e-5, 1e-3)", "lora.r": "uniform(2, 8)", "name": "choice(a, b)",
             "data.sources": "choice(a)", "train.warmup_ratio": "uniform(0.2, 0.1)", "seed": "7"}
    cfg = tunesmith.load_config(with_sweep(tiny_config, space=space))
    with pytest.raises(TunesmithError) as info:
        check_space(cfg)
    text = str(info.value)
    assert len(info.value.problems) == 6
    assert "sweep.space.train.learnin_rate" in text and "did you mean 'train.learning_rate'" in text
    assert "lora.r holds whole numbers" in text and "'int(2, 8)'" in text
    assert "name is set by the sweep itself" in text
    assert "data.sources is a list of sections" in text
    assert "low 0.2 is not below high 0.1" in text
    assert "sweep.space.seed: '7': not of the form kind(arguments)" in text


def test_each_end_of_a_range_must_pass_the_config_checks(tiny_config):
    space = {"train.learning_rate": "uniform(0.5, 2)", "train.lr_scheduler": "choice(cosine, wobbly)",
             "train.batch_size": "int(0, 8)", "lora.dropout": "uniform(0.0, 0.1)"}
    with pytest.raises(TunesmithError) as info:
        check_space(tunesmith.load_config(with_sweep(tiny_config, space=space)))
    problems = {p.field: str(p) for p in info.value.problems}
    assert set(problems) == {"sweep.space.train.learning_rate", "sweep.space.train.lr_scheduler",
                             "sweep.space.train.batch_size"}  # dropout's range is fine
    assert "train.learning_rate=2.0 (from 'uniform(0.5, 2)')" in problems["sweep.space.train.learning_rate"]
    assert "outside (0, 1)" in problems["sweep.space.train.learning_rate"]
    assert "'wobbly' is not a valid" in problems["sweep.space.train.lr_scheduler"]
    assert "train.batch_size=0" in problems["sweep.space.train.batch_size"]


def test_an_empty_space_is_a_clear_error(tiny_config):
    with pytest.raises(TunesmithError, match="the sweep has no search space") as info:
        run_sweep(tiny_config)
    assert info.value.problems[0].field == "sweep.space"


def test_an_eval_metric_needs_validation_data(tiny_config):
    cfg = with_sweep(tiny_config, space={"train.learning_rate": "loguniform(1e-4, 1e-2)"})
    cfg["data"] = {**cfg["data"], "validation_fraction": 0.0}
    cfg["train"] = {**cfg["train"], "eval_steps": 0}
    with pytest.raises(TunesmithError, match="'eval_loss' is measured on validation data"):
        run_sweep(cfg)
    assert not (Path(tiny_config["output_dir"]) / "tiny-sweep").exists()


def test_shipped_sweep_config_space_checks():
    cfg = tunesmith.load_config(ROOT / "configs" / "sweep-lora.yaml")
    space = check_space(cfg)
    assert space["lora.r"] == Range("choice", (8, 16, 32))
    assert space["train.learning_rate"].kind == "loguniform"
    assert cfg.train.eval_steps > 0 and cfg.sweep.pruner == "median"  # so pruning can act


# --------------------------------------------------------------------------- pruning


def test_pruning_callback_prunes_a_trial_worse_than_the_median():
    import optuna
    from transformers import TrainerState

    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1),
                                sampler=optuna.samplers.TPESampler(seed=0))
    first = study.ask()
    cb = pruning_callback(first, "eval_loss")
    cb.on_train_begin(None, TrainerState(), None)
    cb.on_evaluate(None, TrainerState(global_step=2, max_steps=4), None, metrics={"eval_loss": 1.0})
    study.tell(first, 1.0)

    better = study.ask()
    cb = pruning_callback(better, "eval_loss")
    cb.on_train_begin(None, TrainerState(), None)
    cb.on_evaluate(None, TrainerState(global_step=2, max_steps=4), None, metrics={"eval_loss": 0.5})
    assert cb.pruned_at is None and not better.should_prune()
    study.tell(better, 0.5)

    worse = study.ask()
    cb = pruning_callback(worse, "eval_loss")
    cb.on_evaluate(None, TrainerState(global_step=2, max_steps=4), None, metrics={"eval_loss": 9.0})
    assert cb.reported == 0  # before training begins (and after it ends) evaluations are not reported
    cb.on_train_begin(None, TrainerState(), None)
    cb.on_evaluate(None, TrainerState(global_step=2, max_steps=4), None, metrics={"other": 1.0})
    assert cb.reported == 0  # no value of the metric: nothing to report
    with pytest.raises(optuna.TrialPruned, match="pruned at step 2"):
        cb.on_evaluate(None, TrainerState(global_step=2, max_steps=4), None, metrics={"eval_loss": 9.0})
    assert cb.pruned_at == 2 and worse.should_prune()
    # At the last step the run is done: it is reported but never pruned.
    cb.on_evaluate(None, TrainerState(global_step=4, max_steps=4), None, metrics={"eval_loss": 9.0})
    assert cb.reported == 2


def test_median_pruning_is_reported_inactive_without_periodic_eval(tiny_config, capsys):
    from tunesmith.sweep import _pruner

    cfg = tunesmith.load_config(tiny_config, {"train.eval_steps": 0, "sweep.pruner": "median"})
    pruner, note = _pruner(cfg)
    assert type(pruner).__name__ == "NopPruner" and note["active"] is False and "eval_steps" in note["why"]
    pruner, note = _pruner(tunesmith.load_config(tiny_config, {"sweep.trials": 8}))
    assert type(pruner).__name__ == "MedianPruner" and note == {"pruner": "median", "active": True,
                                                                 "n_startup_trials": 2}


# --------------------------------------------------------------------------- real sweeps


def test_three_trial_sweep_on_the_tiny_model(tiny_config):
    space = {"train.learning_rate": "loguniform(1e-4, 5e-2)", "lora.r": "choice(2, 4, 8)"}
    best = run_sweep(with_sweep(quick(tiny_config), trials=3, space=space, pruner="none"))
    sweep_dir = Path(tiny_config["output_dir"]) / "tiny-sweep"
    state = json.loads((sweep_dir / "sweep.json").read_text())
    trials = state["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2] and state["status"] == "finished"
    assert all(t["state"] == "complete" for t in trials)
    lrs = [t["params"]["train.learning_rate"] for t in trials]
    assert len(set(lrs)) == 3 and all(1e-4 <= lr <= 5e-2 for lr in lrs)
    assert all(t["params"]["lora.r"] in (2, 4, 8) for t in trials)
    for t in trials:  # each trial trained with its sampled values, in its own run directory
        run_dir = Path(t["run_dir"])
        assert run_dir.parent == sweep_dir and run_dir.name == f"tiny-trial-{t['number']:03d}"
        resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert resolved["train"]["learning_rate"] == t["params"]["train.learning_rate"]
        assert resolved["lora"]["r"] == t["params"]["lora.r"]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["result"]["eval_loss"] == t["value"] and math.isfinite(t["value"])
    values = [t["value"] for t in trials]
    assert len(set(values)) == 3  # different settings, different losses
    assert best["best_value"] == min(values)
    assert best["best_trial"] == values.index(min(values)) == state["best"]["number"]
    assert best["best_params"] == trials[best["best_trial"]]["params"]
    assert (Path(best["best_run_dir"]) / "adapter" / "adapter_model.safetensors").is_file()
    table = (sweep_dir / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    assert rows[0].startswith(f"| 1 | {best['best_trial']:03d} | complete | {best['best_value']:.4f} |")
    ranked = [float(r.split("|")[4]) for r in rows]
    assert ranked == sorted(ranked)  # best (smallest eval_loss) first

    with pytest.raises(TunesmithError, match="holds an earlier sweep"):  # never overwritten silently
        run_sweep(with_sweep(tiny_config, trials=1, space=space, pruner="none"))


def test_a_pruned_trial_is_recorded_as_pruned(tiny_config):
    import optuna

    class PruneTrialOne(optuna.pruners.BasePruner):
        """Deterministic stand-in for the median pruner: trial 1 is pruned at its first evaluation."""

        def prune(self, study, trial) -> bool:
            return trial.number == 1

    space = {"train.learning_rate": "loguniform(1e-4, 5e-2)"}
    best = run_sweep(with_sweep(quick(tiny_config), trials=2, space=space), pruner=PruneTrialOne())
    state = json.loads((Path(best["sweep_dir"]) / "sweep.json").read_text())
    first, pruned = state["trials"]
    assert first["state"] == "complete" and pruned["state"] == "pruned"
    assert pruned["pruned_at_step"] == 1  # the first evaluation (eval_steps=1), before max_steps=2
    metrics = [json.loads(line) for line in (Path(pruned["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if "eval_loss" in m]
    assert [m["step"] for m in evals] == [1] and pruned["value"] == evals[0]["eval_loss"]
    assert max(m["step"] for m in metrics) == 1  # training stopped there
    assert not (Path(pruned["run_dir"]) / "adapter").exists()
    assert best["best_trial"] == 0 and best["best_value"] == first["value"]
    assert "| 2 | 001 | pruned |" in (Path(best["sweep_dir"]) / "results.md").read_text()


def test_failed_trials_are_recorded_and_the_sweep_goes_on(tiny_config, monkeypatch):
    """Trial bookkeeping without training: `train` is replaced by a stand-in that fails some trials."""
    import tunesmith.api
    from tunesmith.runs import write_json

    def fake_train(config, overrides, show_progress, callbacks):
        run_dir = Path(overrides["output_dir"]) / overrides["name"]
        if overrides["name"].endswith(fail_on):
            raise RuntimeError("CUDA out of memory (stand-in)")
        run_dir.mkdir(parents=True)
        write_json(run_dir / "manifest.json", {"result": {"eval_loss": overrides["train.learning_rate"] * 100}})
        return run_dir

    monkeypatch.setattr(tunesmith.api, "train", fake_train)
    space = {"train.learning_rate": "loguniform(1e-4, 1e-2)"}
    fail_on = "-001"
    best = run_sweep(with_sweep(tiny_config, trials=3, space=space))
    state = json.loads((Path(best["sweep_dir"]) / "sweep.json").read_text())
    assert [t["state"] for t in state["trials"]] == ["complete", "failed", "complete"]
    assert state["trials"][1]["error"] == "RuntimeError: CUDA out of memory (stand-in)"
    done = [t for t in state["trials"] if t["state"] == "complete"]
    assert best["best_value"] == min(t["value"] for t in done)
    assert "trial 001: RuntimeError: CUDA out of memory" in (Path(best["sweep_dir"]) / "results.md").read_text()

    fail_on = ""  # every trial fails: the sweep raises, listing each one, and sweep.json keeps them
    with pytest.raises(TunesmithError, match="all 2 trials failed") as info:
        run_sweep(with_sweep({**tiny_config, "name": "allbad"}, trials=2, space=space))
    assert len(info.value.problems) == 2
    state = json.loads((Path(tiny_config["output_dir"]) / "allbad-sweep" / "sweep.json").read_text())
    assert [t["state"] for t in state["trials"]] == ["failed", "failed"] and state["best"] is None


def test_cli_sweep_prints_the_table_and_the_best_run(tiny_config, tmp_path, capsys):
    from tunesmith.cli import main

    cfg = with_sweep(quick(tiny_config), trials=5, space={"lora.r": "choice(2, 8)"}, pruner="none")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["sweep", "--trials", "2", str(path), "train.max_steps=1", "name=cli"]) == 0
    out = capsys.readouterr().out
    state = json.loads((Path(tiny_config["output_dir"]) / "cli-sweep" / "sweep.json").read_text())
    assert len(state["trials"]) == 2 and state["trials_planned"] == 2  # --trials replaced sweep.trials=5
    best = state["best"]
    assert "| rank | trial | state | eval_loss | lora.r |" in out
    assert out.rstrip().splitlines()[-1] == (f"tunesmith: best trial {best['number']:03d} (eval_loss "
                                             f"{best['value']:.4f}); run directory {best['run_dir']}")
    assert (Path(best["run_dir"]) / "adapter").is_dir()
    assert json.loads((Path(best["run_dir"]) / "manifest.json").read_text())["result"]["steps"] == 1

    path.write_text(yaml.safe_dump(with_sweep(tiny_config, space={"lora.r": "uniform(2, 8)"})))
    assert main(["sweep", str(path)]) == 2
    assert "lora.r holds whole numbers" in capsys.readouterr().err
