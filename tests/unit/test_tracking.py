"""train.report_to: a tiny run logged to MLflow (local SQLite store) and TensorBoard, read back
with each library's own reader: params, the loss curve, eval results and the report artefact."""

from __future__ import annotations

import json

import pytest

import tunesmith
from tunesmith.errors import TunesmithError

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("tracked")
    rows = [{"instruction": f"Say {w}.", "output": w} for w in ("red", "green", "blue", "cyan") * 4]
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "suite.yaml").write_text(f"name: s\ntasks:\n  - name: ppl\n    type: perplexity\n"
                                    f"    data: {tmp / 'train.jsonl'}\n")
    cfg = {"name": "tracked", "output_dir": str(tmp / "runs"), "seed": 1, "model": {"name": str(tiny_model_dir)},
           "data": {"train": [str(tmp / "train.jsonl")], "validation_fraction": 0.25, "max_length": 64},
           "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "precision": "fp32", "logging_steps": 1,
                     "eval_steps": 2, "early_stopping_patience": 0, "epochs": 1,
                     "report_to": ["mlflow", "tensorboard"]},
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "eval": {"suite": str(tmp / "suite.yaml")},
           "energy": {"enabled": False}}
    run_dir = tunesmith.train(cfg, show_progress=False)
    return run_dir, json.loads((run_dir / "tracking.json").read_text())


def test_mlflow_sqlite_store_holds_params_loss_curve_eval_and_report(tracked):
    from mlflow.tracking import MlflowClient

    run_dir, state = tracked
    m = state["mlflow"]
    assert m["tracking_uri"] == f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"
    client = MlflowClient(m["tracking_uri"])
    run = client.get_run(m["run_id"])
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.01" and run.data.params["max_steps"] == "4"
    ours = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    want = [(r["step"], r["loss"]) for r in ours if "loss" in r]
    got = [(h.step, h.value) for h in client.get_metric_history(m["run_id"], "loss")]
    assert len(got) == len(want) == 4
    assert [s for s, _ in got] == [s for s, _ in want]
    assert all(abs(a - b) < 1e-3 for (_, a), (_, b) in zip(got, want))
    assert client.get_metric_history(m["run_id"], "eval_loss")
    base = run.data.metrics["eval.ppl.perplexity.base"]
    tuned = run.data.metrics["eval.ppl.perplexity.tuned"]
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert base == pytest.approx(results["tasks"][0]["metrics"]["base"]["perplexity"])
    assert tuned == pytest.approx(results["tasks"][0]["metrics"]["tuned"]["perplexity"])
    artefacts = {a.path for a in client.list_artifacts(m["run_id"])}
    assert {"report.html", "config.yaml", "eval"} <= artefacts
    assert (run_dir.parent / "mlartifacts").is_dir()  # beside the store, not ./mlruns in the cwd


def test_tensorboard_event_files_hold_the_loss_curve_and_eval(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, state = tracked
    acc = EventAccumulator(state["tensorboard"]["dir"], size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "eval/ppl/perplexity/tuned" in tags
    ours = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    want = [r["loss"] for r in ours if "loss" in r]
    got = [e.value for e in acc.Scalars("train/loss")]
    assert len(got) == len(want) and all(abs(a - b) < 1e-3 for a, b in zip(got, want))


def test_a_tracker_that_is_not_installed_is_refused_before_training(tiny_config, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = {**tiny_config, "train": {**tiny_config["train"], "report_to": ["wandb"]}}
    with pytest.raises(TunesmithError, match="pip install wandb"):
        tunesmith.train(cfg, show_progress=False)
    with pytest.raises(TunesmithError, match="unknown|not a valid"):
        tunesmith.load_config({**tiny_config, "train": {**tiny_config["train"], "report_to": ["neptune"]}})
