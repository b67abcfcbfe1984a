"""vLLM: not an in-process backend; tunesmith starts vLLM's own OpenAI server (with its LoRA
support) where a CUDA GPU is present, and refuses clearly elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tunesmith.errors import fail
from tunesmith.serve.backends.base import adapter_folder, model_id


def vllm_command(base: str, adapters: dict[str, str], *, host: str, port: int, api_key: str | None,
                 max_concurrent: int, served_name: str) -> list[str]:
    """`vllm serve` with tunesmith's adapters as LoRA modules (a documented path, not run here)."""
    import json

    cmd = ["vllm", "serve", base, "--host", host, "--port", str(port), "--served-model-name", served_name,
           "--max-num-seqs", str(max_concurrent)]
    if adapters:
        ranks = [json.loads((adapter_folder(p) / "adapter_config.json").read_text()).get("r", 16)
                 for p in adapters.values()]
        cmd += ["--enable-lora", "--max-loras", str(len(adapters)), "--max-lora-rank", str(max(ranks)),
                "--lora-modules", *[f"{n}={adapter_folder(p)}" for n, p in adapters.items()]]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd


def run_vllm(target: str, *, host: str, port: int, adapters: dict[str, str] | None, api_key: str | None,
             max_concurrent: int) -> None:
    """Start vLLM's own OpenAI server on a CUDA GPU; refuse clearly where there is none."""
    import torch

    if not torch.cuda.is_available():
        raise fail("--backend vllm needs a CUDA GPU and this machine has none",
                   "serve with --backend transformers (or llamacpp for a .gguf) on CPU")
    if shutil.which("vllm") is None:
        raise fail("--backend vllm needs vLLM, which is not installed", "pip install vllm (on the GPU machine)")
    from tunesmith import runs
    from tunesmith.models.loading import materialize, resolve

    adapters = dict(adapters or {})
    path = Path(target)
    if runs.is_run_dir(path) and (path / "adapter").is_dir():
        from tunesmith.config import load_config

        cfg = load_config(path / runs.CONFIG_FILE)
        base = str(materialize(resolve(cfg.model.name, cfg.model.gguf_file)))
        adapters = {path.resolve().name: str(path / "adapter"), **adapters}
        served = model_id(cfg.model.name)
    else:
        base = str(materialize(resolve(str(path / "model") if (path / "model").is_dir() else target)))
        served = model_id(target)
    cmd = vllm_command(base, adapters, host=host, port=port, api_key=api_key, max_concurrent=max_concurrent,
                       served_name=served)
    shown = [("***" if prev == "--api-key" else a) for prev, a in zip([""] + cmd, cmd)]
    print("tunesmith: starting vLLM:", " ".join(shown), flush=True)
    raise SystemExit(subprocess.call(cmd))
