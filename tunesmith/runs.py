"""The run directory: resolved config, manifest, metrics, outputs.

runs/<name>/
  config.yaml       the resolved config (every default filled in, paths absolute)
  manifest.json     versions, git SHA, seed, data and model hashes, hardware, status
  metrics.jsonl     one JSON object per log step (loss, eval_loss, learning_rate, tokens_per_s)
  data_report.json  what tokenization did to the data (kept, dropped, truncated, loss fraction)
  adapter/          the LoRA adapter (plain peft), with the tokenizer      [method: lora]
  model/            the full fine-tuned model, with the tokenizer          [method: full]
  checkpoints/      resumable trainer checkpoints
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tunesmith.errors import fail

CONFIG_FILE, MANIFEST_FILE, METRICS_FILE = "config.yaml", "manifest.json", "metrics.jsonl"


def run_dir_for(cfg) -> Path:
    return Path(cfg.output_dir) / cfg.name


def prepare_run_dir(cfg) -> tuple[Path, str | None]:
    """Create the run directory; returns (run_dir, checkpoint to resume from or None).

    A finished run is never overwritten silently; an unfinished one with checkpoints is resumed,
    so re-running the same command after a crash continues where it stopped.
    """
    run_dir = run_dir_for(cfg)
    manifest = read_manifest(run_dir)
    if manifest and manifest.get("status") == "completed":
        if not cfg.overwrite:
            raise fail(f"run directory {run_dir} holds a finished run",
                       "pick another name (name=...) or replace it (overwrite=true)", field="name")
        shutil.rmtree(run_dir)
    resume = last_checkpoint(run_dir)
    if cfg.overwrite and resume:
        shutil.rmtree(run_dir)
        resume = None
    if resume:
        _check_same_config(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _trim_metrics(run_dir, int(resume.rsplit("-", 1)[1]) if resume else 0)
    return run_dir, resume


def _check_same_config(cfg, run_dir: Path) -> None:
    """Resuming continues a run as it was configured: a changed setting would silently mix two runs."""
    import yaml

    from tunesmith.config import to_dict

    try:
        old = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return
    new = to_dict(cfg)
    changed = sorted(k for k in _flat(new) if k not in ("overwrite", "config_path")
                     and _flat(new).get(k) != _flat(old or {}).get(k))
    if changed:
        raise fail(f"run {run_dir} has a checkpoint to resume, but its config differs in: {', '.join(changed)}",
                   "restore those settings to resume, or start over with overwrite=true, or use another name")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and k not in ("columns",):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _trim_metrics(run_dir: Path, keep_through_step: int) -> None:
    """A fresh start empties metrics.jsonl; a resume from step N drops rows logged after N."""
    path = run_dir / METRICS_FILE
    rows = read_metrics(run_dir) if path.exists() and keep_through_step else []
    kept = [r for r in rows if r.get("step", 0) <= keep_through_step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def last_checkpoint(run_dir: Path) -> str | None:
    """Newest complete checkpoint. The trainer writes trainer_state.json last (after weights,
    optimizer, scheduler and RNG states), so a checkpoint is complete when that file exists and
    parses: a kill during any write leaves one that is skipped, never one that looks whole."""
    def complete(p: Path) -> bool:
        try:
            json.loads((p / "trainer_state.json").read_text())
            return p.name.rsplit("-", 1)[1].isdigit()
        except (OSError, ValueError):
            return False

    ckpts = [p for p in (run_dir / "checkpoints").glob("checkpoint-*") if complete(p)]
    ckpts.sort(key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return str(ckpts[-1]) if ckpts else None


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_manifest(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and (Path(path) / MANIFEST_FILE).is_file()


def append_metrics(run_dir: Path, row: dict) -> None:
    with open(run_dir / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / METRICS_FILE) as f:
        return [json.loads(line) for line in f if line.strip()]


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tunesmith", "torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def build_manifest(cfg, *, data_files: list[str], model_source, precision: tuple[str, str]) -> dict:
    from tunesmith.hardware import hardware_info
    from tunesmith.models.loading import file_sha256

    return {
        "tunesmith_run": 1,
        "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "seed": cfg.seed,
        "versions": versions(),
        "git_sha": git_sha(),
        "precision": {"value": precision[0], "why": precision[1]},
        "data": [{"path": p, "sha256": file_sha256(p)} for p in data_files],
        "model": {"spec": model_source.spec, "kind": model_source.kind, "path": model_source.path,
                  "file": model_source.weights_file,
                  "sha256": file_sha256(model_source.weights_file) if model_source.weights_file else None},
        "hardware": hardware_info(),
    }
