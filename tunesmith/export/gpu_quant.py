"""GPU-side quantized export for vLLM: `tunesmith export RUN --format gptq|awq`.

Both start from the merged transformers checkpoint (RUN/export/hf) and calibrate on the run's own
training conversations, so the layers are quantized for the activations this model actually sees:

- gptq: GPTQ through gptqmodel (its `QuantizeConfig(bits, group_size)`, `GPTQModel.load`, `quantize`,
  `save`); vLLM loads the folder as a GPTQ checkpoint (Marlin / Exllama kernels).
- awq: AWQ scaling through llm-compressor's `AWQModifier` followed by its `QuantizationModifier`
  (W4A16 asymmetric, group 128 by default; W8A16 for 8 bits), saved in the compressed-tensors
  format that vLLM reads natively.

Both libraries quantize layer by layer on a CUDA device; on CPU gptqmodel falls back to pure-torch
kernels that take hours for a 1B model and llm-compressor's calibration forward passes are no
faster, so without CUDA the export refuses before any work (nothing is written). The parity check
is the same one every export passes (export/parity.py), with the 4-bit (or 8-bit) thresholds.

The two libraries pin different torch / transformers ranges (gptqmodel 7.7: torch >= 2.14.1,
transformers >= 5.20.2; llm-compressor 0.14: transformers <= 5.17), so they live in separate
environments: `pip install 'tunesmith[gptq]'` or `pip install 'tunesmith[awq]'` (docs/export_and_serving.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunesmith.errors import fail
from tunesmith.export.parity import HFCandidate

# format -> (the library that quantizes, its pip extra, the name vLLM gives the method)
FORMATS = {"gptq": ("gptqmodel", "gptq", "gptq_marlin"), "awq": ("llmcompressor", "awq", "compressed-tensors")}
BITS = (4, 8)


def check_can_run(fmt: str, bits: int = 4, group_size: int = 128, *, cuda: bool | None = None) -> None:
    """Refuse (TunesmithError) unless `fmt` can run here: a CUDA device and the library installed.
    Called before the export merges anything, so a refusal leaves no files behind."""
    if fmt not in FORMATS:
        raise fail(f"unknown GPU quantization format '{fmt}'", f"use one of: {', '.join(FORMATS)}", field="--format")
    if bits not in BITS:
        raise fail(f"--bits {bits} is not offered for {fmt}", "use --bits 4 (default) or 8", field="--bits")
    if group_size != -1 and (group_size < 16 or group_size & (group_size - 1)):
        raise fail(f"--group-size {group_size} is not a power of two >= 16 (or -1 for one group per row)",
                   "use 128 (the default, what vLLM's kernels are fastest with), 64 or 32", field="--group-size")
    lib, extra, _ = FORMATS[fmt]
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
        where = f"torch {torch.__version__}, torch.cuda.is_available() is False"
    else:
        where = "no CUDA device"
    if not cuda:
        raise fail(f"--format {fmt} quantizes on an NVIDIA GPU with CUDA, and this machine has none ({where}); "
                   "nothing was written",
                   f"run the export on a CUDA machine where `pip install 'tunesmith[{extra}]'` is installed, or for a "
                   "4-bit file made on this CPU use --format gguf --quant q4_k_m (llama.cpp, Ollama)")
    if importlib.util.find_spec(lib) is None:
        raise fail(f"--format {fmt} needs the {lib} package, which is not installed",
                   f"pip install 'tunesmith[{extra}]' (in its own environment: gptqmodel and llm-compressor pin "
                   "different transformers versions; see docs/export_and_serving.md)")


def calibration_texts(run_dir: str | Path, tokenizer, n: int = 128) -> list[str]:
    """Up to `n` whole conversations of the run's data (validation first), rendered with the chat
    template and including the trained reply, then the generic parity prompts; the activations GPTQ
    and AWQ calibrate on are then the ones the tuned model produces on its own task."""
    from tunesmith.export.parity import PROMPTS, _run_examples

    chat = bool(getattr(tokenizer, "chat_template", None))
    out: list[str] = []
    for ex, _split in _run_examples(run_dir):
        if len(out) >= n:
            break
        if ex.messages and chat:
            try:
                out.append(tokenizer.apply_chat_template(list(ex.messages), tokenize=False))
            except Exception:  # noqa: BLE001 - a template that refuses this row (tools, roles): skip it
                continue
        elif isinstance((ex.extra or {}).get("text"), str) and ex.extra["text"].strip():
            out.append(ex.extra["text"])
    if chat:
        out += [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                              add_generation_prompt=True) for p in PROMPTS]
    else:
        out += list(PROMPTS)
    return [t for t in dict.fromkeys(out) if t.strip()]


def quantize(fmt: str, hf_dir: Path, out_dir: Path, texts: list[str], *, bits: int = 4, group_size: int = 128,
             max_length: int = 2048) -> dict:
    """Quantize the merged checkpoint `hf_dir` into `out_dir`; returns what the manifest records."""
    import os
    import shutil
    import time

    t0 = time.time()
    out_dir = Path(out_dir)
    # Written whole, then renamed (as export/merge.py writes hf/): a crash mid-quantization leaves no
    # folder that looks finished, and no shard of an earlier export stays beside the new ones.
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if fmt == "gptq":
            _gptq(hf_dir, tmp, texts, bits, group_size, max_length)
        else:
            _awq(hf_dir, tmp, texts, bits, group_size, max_length)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    lib = FORMATS[fmt][0]
    from importlib.metadata import version

    return {"format": fmt, "dir": str(out_dir), "bits": bits, "group_size": group_size,
            "calibration_rows": len(texts), "seconds": round(time.time() - t0, 1),
            "library": lib, "library_version": version(lib), "vllm_quantization": FORMATS[fmt][2]}


def _gptq(hf_dir: Path, out_dir: Path, texts: list[str], bits: int, group_size: int, max_length: int) -> None:
    from gptqmodel import GPTQModel, QuantizeConfig
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    # Token ids, not strings: the texts already carry the chat template's special tokens, and a second
    # BOS from the library's own tokenization would calibrate on inputs the model never sees.
    rows = [tokenizer(t, add_special_tokens=False, truncation=True, max_length=max_length) for t in texts]
    model = GPTQModel.load(str(hf_dir), QuantizeConfig(bits=bits, group_size=group_size))
    # batch 1: rows differ in length, and padding would calibrate on pad positions
    model.quantize([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows],
                   batch_size=1)
    model.save(str(out_dir))


def _awq(hf_dir: Path, out_dir: Path, texts: list[str], bits: int, group_size: int, max_length: int) -> None:
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # llm-compressor >= 0.14 moved AWQ among the transforms (the old path is a deprecated shim)
        from llmcompressor.modifiers.transform.awq import AWQModifier
    except ImportError:
        from llmcompressor.modifiers.awq import AWQModifier

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16, device_map="cuda")
    rows = [tokenizer(t, add_special_tokens=False, truncation=True, max_length=max_length) for t in texts]
    data = Dataset.from_list([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows])
    scheme = "W4A16_ASYM" if bits == 4 else "W8A16"
    quant = {"targets": ["Linear"], "ignore": ["lm_head"], "scheme": scheme}
    if group_size != 128:  # the preset schemes use groups of 128; another size needs the weights spelled out
        quant = {"ignore": ["lm_head"], "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
            "num_bits": bits, "type": "int", "symmetric": bits == 8, "strategy": "group" if group_size > 0 else
            "channel", "group_size": group_size if group_size > 0 else None}}}}
    recipe = [AWQModifier(ignore=["lm_head"]), QuantizationModifier(**quant)]
    oneshot(model=model, tokenizer=tokenizer, dataset=data, recipe=recipe, max_seq_length=max_length,
            num_calibration_samples=len(rows))
    model.save_pretrained(out_dir, save_compressed=True)  # compressed-tensors: what vLLM loads
    tokenizer.save_pretrained(out_dir)


class QuantCandidate(HFCandidate):
    """A GPTQ or compressed-tensors folder for the parity check, run on the GPU the way vLLM's users
    check it with transformers: greedy decoding and per-position logits, as HFCandidate does."""

    def __init__(self, path: Path, fmt: str):
        import torch
        from transformers import AutoTokenizer

        if fmt == "gptq":
            from gptqmodel import GPTQModel

            model = GPTQModel.load(str(path)).model  # the transformers module with GPTQ kernels
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float16, device_map="cuda")
        super().__init__(model, AutoTokenizer.from_pretrained(path), name=f"{fmt}:{Path(path).name}")

    def close(self) -> None:
        import torch

        del self.model
        torch.cuda.empty_cache()
