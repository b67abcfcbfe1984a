"""One fine-tuning job, in a process of its own: `python -m tunesmith.serve.job_worker SERVICE_DIR JOB_ID`.

The server starts one per running job (jobs.py), so a job that crashes (or runs out of memory) cannot
take the server down. A job is a tunesmith run: <service>/runs/<job id>/ holds its resolved config,
manifest, checkpoints and adapter, so `tunesmith eval` and `tunesmith export` work on it. Started
again on the same job (after a pause, or a server that died), it resumes from the run's last
checkpoint. The worker writes the job's events, checkpoints and final status itself, so the outcome
is recorded even when the server is gone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

RECIPES = {"supervised": "sft", "dpo": "dpo"}


def ft_model_id(job: dict) -> str:
    """OpenAI's shape: ft:BASE:SUFFIX:ID (a tunesmith label where there is no organisation)."""
    return f"ft:{job['model']}:{job.get('suffix') or 'tunesmith'}:{job['id'].removeprefix('ftjob-')[:12]}"


def run_config(job: dict, files, root: Path) -> dict:
    """The run config of a job: its files, the method's recipe and the requested hyperparameters
    ("auto" stays auto: tunesmith/autotune.py resolves it from the data)."""
    method = job.get("method") or {"type": "supervised"}
    kind = method.get("type", "supervised")
    hp = dict((method.get(kind) or {}).get("hyperparameters") or job.get("hyperparameters") or {})
    train = {"epochs": hp.get("n_epochs", "auto"), "batch_size": hp.get("batch_size", "auto"),
             "learning_rate": "auto", "save_steps": 10, "save_total_limit": 3, "logging_steps": 1}
    cfg = {"name": job["id"], "output_dir": str(root / "runs"), "seed": job.get("seed") or 42,
           "recipe": RECIPES[kind], "model": {"name": job.get("base") or job["model"]},
           "data": {"train": [files.require(job["training_file"])["path"]]}, "train": train}
    if job.get("validation_file"):
        cfg["data"]["validation"] = files.require(job["validation_file"])["path"]
        if kind == "supervised":  # the run's report: held-out loss of the base and the tuned model
            suite = root / "runs" / f"{job['id']}.eval.yaml"
            suite.write_text(f"name: validation\ntasks:\n  - name: validation\n    type: perplexity\n"
                             f"    data: {json.dumps(cfg['data']['validation'])}\n", encoding="utf-8")
            cfg["eval"] = {"suite": str(suite)}
    if kind == "dpo" and hp.get("beta", "auto") != "auto":
        cfg["preference"] = {"beta": float(hp["beta"])}
    from tunesmith.config_build import set_dotted

    for key, value in (job.get("overrides") or {}).items():  # the studio's form (editable keys, checked)
        if value not in ("", None):
            set_dotted(cfg, key, value)
    return cfg


def resolve(cfg: dict, multiplier) -> tuple[dict, dict]:
    """The config with every auto value resolved (learning rate times the job's multiplier), and the
    hyperparameters to report on the job."""
    from tunesmith import autotune
    from tunesmith.config import load_config, to_dict

    resolved = autotune.resolve(load_config(cfg))
    lr = resolved.train.learning_rate * (1.0 if multiplier in (None, "auto") else float(multiplier))
    out = to_dict(resolved)
    out.pop("config_path", None)
    out.pop("auto", None)
    out["train"]["learning_rate"] = lr
    reported = {"n_epochs": resolved.train.epochs, "batch_size": resolved.train.batch_size,
                "learning_rate_multiplier": 1.0 if multiplier in (None, "auto") else float(multiplier),
                "learning_rate": lr}
    if cfg["recipe"] == "dpo":
        reported["beta"] = resolved.preference.beta
    return out, reported


def _callback(store, job: dict, run_dir: Path):
    from transformers import TrainerCallback

    class Events(TrainerCallback):
        """Metrics events per logged step, a checkpoint row per saved checkpoint."""

        last: dict = {}

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" in logs or "eval_loss" in logs:
                data = {"step": state.global_step, "total_steps": state.max_steps}
                if "loss" in logs:
                    data["train_loss"] = logs["loss"]
                if "eval_loss" in logs:
                    data["valid_loss"] = logs["eval_loss"]
                Events.last = {**Events.last, **{k: v for k, v in data.items() if k != "total_steps"}}
                store.event(job["id"], f"Step {state.global_step}/{state.max_steps}: "
                            + ", ".join(f"{k} {v:.4f}" for k, v in data.items() if isinstance(v, float)),
                            data=data, type="metrics")

        def on_save(self, args, state, control, **kw):
            step = state.global_step
            path = Path(args.output_dir) / f"checkpoint-{step}"
            store.checkpoint(job["id"], step, {**Events.last, "step": step}, f"{ft_model_id(job)}:ckpt-step-{step}",
                             str(path))
            store.event(job["id"], f"Checkpoint saved at step {step}")

    return Events()


def main(root: str, job_id: str) -> int:
    from tunesmith import api
    from tunesmith.errors import TunesmithError
    from tunesmith.serve.files import FileStore
    from tunesmith.serve.job_store import JobStore

    root_path = Path(root)
    store, files = JobStore(root_path), FileStore(root_path)
    job = store.get(job_id)
    try:
        cfg = run_config(job, files, root_path)
        method = job.get("method") or {"type": "supervised"}
        hp = (method.get(method.get("type", "supervised")) or {}).get("hyperparameters") or {}
        cfg, reported = resolve(cfg, hp.get("learning_rate_multiplier"))
        run_dir = root_path / "runs" / job_id
        store.update(job_id, hyperparameters=reported, run_dir=str(run_dir))
        store.event(job_id, "Fine-tuning job started" + (f" (attempt {job['attempts']})" if job["attempts"] > 1
                                                         else ""), data={"hyperparameters": reported})
        run_dir = api.train(cfg, show_progress=False, callbacks=(_callback(store, job, run_dir),))
    except TunesmithError as e:
        store.event(job_id, f"Fine-tuning job failed: {e}", level="error")
        store.set_status(job_id, "failed", ("running",), finished_at=int(time.time()),
                         error={"code": "invalid_training_file", "message": str(e), "param": "training_file"})
        return 1
    except Exception as e:  # noqa: BLE001 - any crash becomes the job's error, never a silent exit
        store.event(job_id, f"Fine-tuning job failed: {type(e).__name__}: {e}", level="error")
        store.set_status(job_id, "failed", ("running",), finished_at=int(time.time()),
                         error={"code": "server_error", "message": f"{type(e).__name__}: {e}", "param": None})
        return 1
    from tunesmith.runs import read_manifest

    result = (read_manifest(run_dir) or {}).get("result") or {}
    if store.set_status(job_id, "succeeded", ("running",), finished_at=int(time.time()),
                        fine_tuned_model=ft_model_id(job), trained_tokens=result.get("tokens_seen")):
        store.event(job_id, f"New fine-tuned model created: {ft_model_id(job)}")
        store.event(job_id, "The job has successfully completed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
