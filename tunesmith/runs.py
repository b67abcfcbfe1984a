"""The run directory: resolved config, manifest, metrics, outputs.

runs/<name>/
  config.yaml       the resolved config (every default filled in, paths absolute)
  manifest.json     versions, git SHA, seed, data and model hashes, hardware, status
  metrics.jsonl     one JSON object per log step (loss, eval_loss, learning_rate, tokens_per_s)
  data_report.json  what tokenization did to the data (kept, dropped, truncated, loss fraction)
  adapter/          the LoRA adapter (plain peft), with the tokenizer      [method: lora]
  model/            the full fine-tuned model, with the tokenizer          [method: full]
  checkpoints/      resumable trainer checkpoints

Under `accelerate launch` / `torchrun` every process runs the recipe. The main process (global
rank 0) alone creates, resumes and writes the run directory; the others wait for it and then use
the same directory and checkpoint (see docs/distributed.md). Several machines need the run
directory on a filesystem they all share.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import fail

CONFIG_FILE, MANIFEST_FILE, METRICS_FILE = "config.yaml", "manifest.json", "metrics.jsonl"


def run_dir_for(cfg) -> Path:
    return Path(cfg.output_dir) / cfg.name


# accelerate launch, torchrun and the deepspeed launcher set WORLD_SIZE/RANK; mpirun (accelerate's
# multi-CPU path) sets its own names, read in this order by accelerate's get_cpu_distributed_information.
_WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _env_int(names: tuple[str, ...], default: int) -> int:
    return next((int(os.environ[n]) for n in names if os.environ.get(n, "").strip()), default)


def world_size() -> int:
    """Number of processes the launcher started; 1 for a plain `tunesmith train`."""
    return _env_int(_WORLD_VARS, 1)


def is_main_process() -> bool:
    """True in a single-process run and on global rank 0 of a launched one: the one process that
    writes the run directory (one writer in all, not one per machine: the directory is shared)."""
    return _env_int(_RANK_VARS, 0) == 0


def prepare_run_dir(cfg) -> tuple[Path, str | None]:
    """Create the run directory; returns (run_dir, checkpoint to resume from or None).

    A finished run is never overwritten silently; an unfinished one with checkpoints is resumed,
    so re-running the same command after a crash continues where it stopped.

    Launched as several processes, the main process decides alone (two deciding at once would race:
    the second could see the first's fresh directory as an unfinished run, or delete it) and sends
    its answer, or its error, to the others, which wait for it: so every process resumes from the
    same checkpoint, and a refused run stops all of them instead of leaving them at a barrier.
    """
    if world_size() == 1:
        return _prepare_run_dir(cfg)
    from datetime import timedelta

    import torch.distributed as dist
    from accelerate import PartialState

    from tunesmith.errors import TunesmithError

    # Joins the process group the launcher described (nccl on GPUs, gloo on CPU). The timeout is
    # transformers' ddp_timeout default, which the trainer would have set had it opened the group.
    PartialState(timeout=timedelta(seconds=1800))
    message: list = [None]
    error = None
    if is_main_process():
        try:
            run_dir, resume = _prepare_run_dir(cfg)
            message[0] = ("ok", str(run_dir), resume)
        except TunesmithError as e:
            error, message[0] = e, ("user_error", e.problems, e.title)
        except Exception as e:  # noqa: BLE001 - sent on so the other processes stop too, then re-raised
            error, message[0] = e, ("error", f"{type(e).__name__}: {e}", None)
    dist.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    kind, payload, extra = message[0]
    if kind == "user_error":
        raise TunesmithError(payload, title=extra)
    if kind == "error":
        raise RuntimeError(f"the main process failed to prepare the run directory: {payload}")
    return Path(payload), extra


def barrier() -> None:
    """Launched as several processes: wait until all reach this point (the main one has written)."""
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def _prepare_run_dir(cfg) -> tuple[Path, str | None]:
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
    changed = sorted(k for k in _flat(new) if k not in ("overwrite", "config_path", "train.threads")
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


def save_trained(trainer, model, tokenizer, out: Path) -> None:
    """Write the trained weights (adapter or full model) and the tokenizer to `out`, once.
    Sharded weights (FSDP, ZeRO-3) must be gathered by every process together: the trainer does
    that and writes on the main process only."""
    if trainer is not None and (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        trainer.save_model(str(out))
    elif is_main_process():
        model.save_pretrained(out)
    if is_main_process():
        tokenizer.save_pretrained(out)


def complete(run_dir: Path, manifest: dict, result: dict, resumed_from: str | None, out: Path, **extra) -> None:
    """Mark the run finished in its manifest (with the result), then wait for every process, so each
    returns a finished run directory."""
    manifest.update(status="completed", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), result=result,
                    resumed_from=resumed_from, output=out.name, **extra)
    write_json(run_dir / MANIFEST_FILE, manifest)
    barrier()


def write_json(path: Path, obj) -> None:
    """Atomic JSON write; launched as several processes, only the main one writes (one file, one writer)."""
    if not is_main_process():
        return
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
    """One line per log step. Trainer calls on_log on every process with the same (already
    gathered) values, so only the main process writes: one line per step, not one per process."""
    if not is_main_process():
        return
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
    from tunesmith import licences
    from tunesmith.hardware import hardware_info
    from tunesmith.models.loading import file_sha256

    manifest = {
        "tunesmith_run": 1,
        "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "seed": cfg.seed,
        "versions": versions(),
        "git_sha": git_sha(),
        "precision": {"value": precision[0], "why": precision[1]},
        "auto": dict(cfg.auto),  # the rule behind each value the config left as auto (tunesmith/autotune.py)
        "data": [{"path": p, "sha256": file_sha256(p), "synthetic_rows": _synthetic_rows(p)} for p in data_files],
        "model": {"spec": model_source.spec, "kind": model_source.kind, "path": model_source.path,
                  "file": model_source.weights_file,
                  "sha256": file_sha256(model_source.weights_file) if model_source.weights_file else None},
        "hardware": hardware_info(),
        # Each input's licence and what they allow the fine-tune to be used for (validate shows the same).
        "licences": licences.check(cfg.data, model_source),
    }
    n = world_size()
    if n > 1:  # launched as several processes: each step's batch is per-device batch x accumulation x n
        manifest["distributed"] = {"processes": n, "global_batch": cfg.train.batch_size * cfg.train.grad_accum * n}
    return manifest


def _synthetic_rows(path: str) -> int:
    """Rows labelled `"synthetic": true` (how `tunesmith data synth` and `data augment` mark what
    they generated) in a data file, for the model card's synthetic share. A byte scan first: a file
    that never mentions the word is not parsed."""
    from tunesmith.data.readers import iter_rows

    with open(path, "rb") as f:
        tail, found = b"", False
        while chunk := f.read(1 << 20):
            if b"synthetic" in tail + chunk:
                found = True
                break
            tail = chunk[-16:]
    if not found:
        return 0
    return sum(1 for _, row in iter_rows(path) if isinstance(row, dict)
               and str(row.get("synthetic")).lower() in ("true", "1"))


@dataclass
class Run:
    """A started run: its directory, the checkpoint it resumes from, and its manifest (written
    again by record() and complete(), on the main process only)."""

    dir: Path
    resume_from: str | None
    manifest: dict

    def record(self, **fields) -> None:
        """Add top-level fields to the manifest and write it."""
        self.manifest.update(fields)
        write_json(self.dir / MANIFEST_FILE, self.manifest)

    def record_model(self, model, **model_info) -> None:
        """The trainable and total parameter counts of `model` (and e.g. its base dtype), written now:
        a run that dies in training still says what it trained."""
        params = [p for p in model.parameters()]
        self.manifest["parameters"] = {"trainable": sum(p.numel() for p in params if p.requires_grad),
                                       "total": sum(p.numel() for p in params)}
        self.manifest["model"].update(model_info)
        write_json(self.dir / MANIFEST_FILE, self.manifest)

    def complete(self, result: dict, out: Path, **extra) -> None:
        complete(self.dir, self.manifest, result, self.resume_from, out, **extra)


def start(cfg, *, source, precision: tuple[str, str], data_report: dict, tokenizer=None, **fields) -> Run:
    """Prepare the run directory (create, or resume from its last checkpoint) and write the resolved
    config, the manifest and the data report into it, once: launched as several processes, only
    the main one writes. Call it after the data is loaded, so bad data never leaves a half-made run
    behind. `fields` go into the manifest (e.g. labels, reward_model)."""
    from tunesmith.config import dump_yaml

    run_dir, resume_from = prepare_run_dir(cfg)
    if is_main_process():
        (run_dir / CONFIG_FILE).write_text(dump_yaml(cfg))
    manifest = build_manifest(cfg, data_files=_data_files(cfg.data), model_source=source, precision=precision)
    if tokenizer is not None:
        manifest["tokenizer"] = tokenizer_provenance(cfg, tokenizer)
    manifest.update(fields)
    write_json(run_dir / MANIFEST_FILE, manifest)
    write_json(run_dir / "data_report.json", data_report)
    return Run(run_dir, resume_from, manifest)


def tokenizer_provenance(cfg, tokenizer) -> dict:
    """Inherited tokenizer values, with where they came from (STYLE rule 6)."""
    return {"chat_template": "model.chat_template (config)" if cfg.model.chat_template else "the model's tokenizer",
            "pad_token": tokenizer.pad_token, "eos_token": tokenizer.eos_token}


def _data_files(data) -> list[str]:
    from tunesmith.data.prepare import data_files

    return data_files(data)
