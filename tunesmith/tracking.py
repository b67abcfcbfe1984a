"""Experiment tracking through the libraries users already run: `train.report_to: [mlflow,
tensorboard, wandb, trackio]`.

The per-step logging is transformers' own integrations (TrainingArguments.report_to): params,
losses, learning rate, eval loss. This module points them at local, offline stores before training
and, after the evaluation and the audit, adds what the Trainer never sees (each task's metrics base
vs tuned, the audit rows, report.html as an artefact):

  mlflow       a SQLite store, sqlite:///<output_dir>/mlflow.db, shared by the runs of one output
               folder (MLflow's file store is deprecated and slow to query), artefacts beside it in
               mlartifacts/; experiment "tunesmith"; train.tracking_uri names another store
  tensorboard  <run_dir>/tensorboard (event files)
  wandb        offline mode in <run_dir>/wandb (`wandb sync` uploads it later), unless WANDB_MODE is set
  trackio      local, its own default store

The MLflow run is created here (its id kept in <run_dir>/tracking.json), so a resumed training, the
evaluation and the audit all log into the same run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tunesmith.errors import fail

BACKENDS = ("mlflow", "tensorboard", "wandb", "trackio")
MODULES = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
STATE = "tracking.json"
EXPERIMENT = "tunesmith"


def check(report_to: list[str]) -> None:
    """Refuse a tracker whose library is not installed, before any model loads."""
    import importlib.util

    missing = [name for name in report_to if importlib.util.find_spec(MODULES[name]) is None]
    if missing:
        raise fail(f"train.report_to names {', '.join(missing)}, which is not installed",
                   f"pip install {' '.join(missing)} (or pip install 'tunesmith[tracking]' for mlflow and "
                   "tensorboard), or remove it from train.report_to", field="train.report_to")


def mlflow_uri(run_dir: Path, tracking_uri: str | None) -> str:
    return tracking_uri or f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"


def prepare(report_to: list[str], run_dir: Path, run_name: str, tracking_uri: str | None = None) -> list[str] | str:
    """Point each chosen integration at its store (environment variables the integrations read) and
    return TrainingArguments.report_to ("none" when empty)."""
    if not report_to:
        return "none"
    check(report_to)
    state = _read(run_dir)
    if "mlflow" in report_to:
        state["mlflow"] = _mlflow_run(run_dir, run_name, tracking_uri, state.get("mlflow"))
        os.environ.update(MLFLOW_TRACKING_URI=state["mlflow"]["tracking_uri"], MLFLOW_EXPERIMENT_NAME=EXPERIMENT,
                          MLFLOW_RUN_ID=state["mlflow"]["run_id"])
    if "tensorboard" in report_to:
        state["tensorboard"] = {"dir": str(run_dir / "tensorboard")}
        os.environ["TENSORBOARD_LOGGING_DIR"] = state["tensorboard"]["dir"]
    if "wandb" in report_to:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.update(WANDB_DIR=str(run_dir), WANDB_NAME=run_name)
        os.environ.setdefault("WANDB_PROJECT", EXPERIMENT)
        state["wandb"] = {"dir": str(run_dir / "wandb"), "mode": os.environ["WANDB_MODE"]}
    if "trackio" in report_to:
        os.environ.setdefault("TRACKIO_PROJECT", EXPERIMENT)
        state["trackio"] = {"project": os.environ["TRACKIO_PROJECT"]}
    _write(run_dir, state)
    return list(report_to)


def _mlflow_run(run_dir: Path, run_name: str, tracking_uri: str | None, known: dict | None) -> dict:
    """The run's MLflow run: the one recorded for this run directory (a resumed training), else new."""
    from mlflow.tracking import MlflowClient

    uri = mlflow_uri(run_dir, tracking_uri)
    client = MlflowClient(uri)
    if known and known.get("tracking_uri") == uri:
        return known
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:  # artefacts beside the store, not in ./mlruns of whatever the cwd is
        artifacts = (run_dir.parent / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=run_name, tags={"tunesmith.run_dir": str(run_dir.resolve())})
    return {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run.info.run_id}


def _read(run_dir: Path) -> dict:
    path = run_dir / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write(run_dir: Path, state: dict) -> None:
    from tunesmith.runs import write_json

    write_json(run_dir / STATE, state)


def _metrics(run_dir: Path) -> dict[str, float]:
    """Evaluation metrics per task and model, and the audit's rows, as flat metric names."""
    out: dict[str, float] = {}
    results = run_dir / "eval" / "results.json"
    if results.is_file():
        data = json.loads(results.read_text(encoding="utf-8"))
        for task in data.get("tasks", []):
            for label, metrics in (task.get("metrics") or {}).items():
                for metric, value in (metrics or {}).items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        out[f"eval.{task['name']}.{metric}.{label}"] = float(value)
    audit = run_dir / "audit" / "results.json"
    if audit.is_file():
        for row in json.loads(audit.read_text(encoding="utf-8")).get("rows", []):
            for label, value in row["values"].items():
                if isinstance(value, (int, float)):
                    out[f"audit.{row['check']}.{row['metric']}.{label}"] = float(value)
    return {_clean(k): v for k, v in out.items()}


def _clean(name: str) -> str:
    # MLflow and TensorBoard accept letters, digits, _ - . / and spaces in metric names
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def log_results(run_dir: Path) -> dict:
    """After evaluation or audit: their metrics and report files into the run's trackers (MLflow
    and TensorBoard; W&B offline and trackio keep what the Trainer logged). Returns what was logged."""
    state = _read(Path(run_dir))
    if not state:
        return {}
    run_dir = Path(run_dir)
    metrics = _metrics(run_dir)
    step = _last_step(run_dir)
    logged = {}
    if "mlflow" in state:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        m = state["mlflow"]
        client = MlflowClient(m["tracking_uri"])
        import time

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 500):  # MLflow's batch limit is 1000 metrics
            client.log_batch(m["run_id"], metrics=batch[i:i + 500])
        for name in ("report.html", "report.md", "config.yaml", "manifest.json", "eval/results.json",
                     "audit/results.json"):
            if (run_dir / name).is_file():
                client.log_artifact(m["run_id"], str(run_dir / name), artifact_path=str(Path(name).parent)
                                    if "/" in name else None)
        logged["mlflow"] = len(batch)
    if "tensorboard" in state and metrics:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(state["tensorboard"]["dir"]) as writer:
            for k, v in metrics.items():
                writer.add_scalar(k.replace(".", "/"), v, step)
        logged["tensorboard"] = len(metrics)
    return logged


def _last_step(run_dir: Path) -> int:
    from tunesmith.runs import read_manifest

    manifest = read_manifest(run_dir) or {}
    return int((manifest.get("result") or {}).get("steps") or 0)
