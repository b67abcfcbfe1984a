"""Export a finished run as a plain transformers checkpoint (adapter merged into the base).

<out>/hf/       safetensors weights, config, generation_config (eos ids include the chat template's
                end-of-turn token), the run's tokenizer with its chat template: loads with
                AutoModelForCausalLM.from_pretrained + AutoTokenizer.from_pretrained, nothing else
<out>/adapter/  the adapter-only form (plain peft), for PeftModel.from_pretrained on the base

The merge is peft's `merge_and_unload` on the base loaded in fp32: W + (alpha/r) B@A is computed
once in full precision, so the merged model matches base + adapter to float rounding.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail

# Recipes whose model is a causal LM that generates. classify and reward train a sequence
# classification head (a score per text), which neither transformers' text-generation path, GGUF
# nor Ollama can run as a chat model.
GENERATIVE_RECIPES = ("sft", "cpt", "dpo", "kto", "orpo", "simpo", "grpo", "ppo")
# peft methods that add virtual tokens instead of changing weights: there is nothing to merge.
UNMERGEABLE = ("prompt_tuning", "prefix_tuning", "p_tuning")


def check_exportable(run_dir: Path):
    """The run's config when `run_dir` is a finished, generative run; else a TunesmithError."""
    from tunesmith.config import load_config

    run_dir = Path(run_dir)
    if not runs.is_run_dir(run_dir):
        raise fail(f"{run_dir} is not a run directory (it needs {runs.CONFIG_FILE} and {runs.MANIFEST_FILE})",
                   "pass the folder that `tunesmith train` wrote, e.g. runs/NAME")
    manifest = runs.read_manifest(run_dir) or {}
    if manifest.get("status") != "completed":
        raise fail(f"run {run_dir} has not finished training (status: {manifest.get('status')})",
                   "finish it first: run `tunesmith train` on its config again (it resumes from the last "
                   "checkpoint), then export")
    cfg = load_config(run_dir / runs.CONFIG_FILE)
    if cfg.recipe == "vlm":
        raise fail(f"run {run_dir} is a vision-language run (recipe: vlm); export, generate, eval and serve take "
                   "text-only models so far",
                   "load it with transformers AutoModelForImageTextToText and peft PeftModel.from_pretrained on its "
                   "adapter/ folder (docs/vision.md shows how), or merge with PeftModel.merge_and_unload()")
    if cfg.recipe not in GENERATIVE_RECIPES:
        raise fail(f"run {run_dir} is a recipe: {cfg.recipe} run, a sequence classifier (one score per text), not "
                   "a model that generates text",
                   f"export supports generative runs (recipe: {', '.join(GENERATIVE_RECIPES)}); a classifier's "
                   f"{manifest.get('output', 'adapter')}/ folder loads as it is with peft and "
                   "AutoModelForSequenceClassification")
    if cfg.train.method in UNMERGEABLE:
        raise fail(f"run {run_dir} trained with train.method: {cfg.train.method}, which adds virtual tokens in front "
                   "of every prompt instead of changing weights, so there is nothing to merge",
                   "use its adapter/ folder with peft directly (PeftModel.from_pretrained) or `tunesmith serve`; "
                   "to export merged weights or GGUF, train with method lora, vera, ia3 or full")
    if not (run_dir / "model").is_dir() and not (run_dir / "adapter" / "adapter_config.json").exists():
        raise fail(f"run {run_dir} has neither adapter/ nor model/", "retrain it, or point at another run")
    return cfg


def end_of_turn_ids(tokenizer) -> list[int]:
    """The special token(s) the chat template closes an assistant turn with (ChatML <|im_end|>,
    Llama 3 <|eot_id|>, Gemma <end_of_turn>): found by rendering a reply and reading what follows it."""
    if not getattr(tokenizer, "chat_template", None):
        return []
    marker = "tunesmith-end-of-turn-probe"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # noqa: BLE001 - a template that needs other roles: no end-of-turn token found
        return []
    after = text[text.rfind(marker) + len(marker):]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after.strip() else []
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return [ids[0]] if ids and ids[0] in special else []


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Every id that ends a reply: the generation config's eos ids, the tokenizer's eos and the chat
    template's end-of-turn token (a chat model whose config names only <|endoftext|> would otherwise
    talk past the end of its turn in plain transformers, llama.cpp and Ollama)."""
    gen = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
    ids = set(gen if isinstance(gen, list) else [gen]) | {tokenizer.eos_token_id} | set(end_of_turn_ids(tokenizer))
    return sorted(i for i in ids if i is not None)


def export_hf(run_dir: Path, out_dir: Path) -> dict:
    """Write out_dir/hf (merged, plain transformers) and out_dir/adapter (adapter runs); returns
    what was done: paths, kind, base model, eos ids, warnings."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.models.loading import load_model, resolve
    from tunesmith.models.quant import quiet_bitsandbytes

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg = check_exportable(run_dir)
    t0 = time.time()
    warnings: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    hf = out_dir / "hf"
    tmp = out_dir / f".hf.tmp{os.getpid()}"  # written whole, then renamed: no half export that looks whole
    shutil.rmtree(tmp, ignore_errors=True)
    full = (run_dir / "model").is_dir()
    if full:
        # A full fine-tune is already a checkpoint: load and re-save it, so the weights are
        # safetensors and the generation config gets the end-of-turn id like a merged export.
        model = AutoModelForCausalLM.from_pretrained(run_dir / "model", dtype=torch.float32,
                                                     trust_remote_code=cfg.model.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(run_dir / "model", trust_remote_code=cfg.model.trust_remote_code)
    else:
        quiet_bitsandbytes()  # before peft imports bitsandbytes
        from peft import PeftModel

        if cfg.model.quantization != "none":
            warnings.append(
                f"the adapter was trained on a {cfg.model.quantization}-quantized base (QLoRA); it was merged into "
                "the base's full-precision (fp32) weights, never into the quantized ones: merging into 4/8-bit "
                "weights rounds every merged weight back to 4/8 bits, which users of other toolkits report as lost "
                "quality. The export therefore answers like base(fp32) + adapter, which is what the parity check "
                "compares against, and can differ slightly from the quantized model used in training")
        source = resolve(cfg.model.name, cfg.model.gguf_file)
        # fp32 whatever the training dtype: the merge adds a small update to each weight, and bf16
        # would round most of it away.
        base = load_model(source, cfg.model.trust_remote_code, dtype="float32")
        model = PeftModel.from_pretrained(base, str(run_dir / "adapter")).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")  # the run's tokenizer and chat template
    model.eval()
    gen = model.generation_config
    gen.eos_token_id = stop_token_ids(tokenizer, gen)
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else gen.eos_token_id[0]
    model.save_pretrained(tmp)  # safetensors (transformers' default and only format since v5)
    tokenizer.save_pretrained(tmp)
    _readable(tmp)
    shutil.rmtree(hf, ignore_errors=True)
    os.replace(tmp, hf)
    adapter = None
    if not full:
        adapter = out_dir / "adapter"
        shutil.rmtree(adapter, ignore_errors=True)
        shutil.copytree(run_dir / "adapter", adapter, ignore=shutil.ignore_patterns("README.md"))
        _readable(adapter)
    for w in warnings:
        print(f"tunesmith: warning: {w}", file=sys.stderr, flush=True)
    return {"hf_dir": str(hf), "adapter_dir": str(adapter) if adapter else None,
            "kind": "full" if full else "merged-adapter", "method": cfg.train.method, "recipe": cfg.recipe,
            "base_model": cfg.model.name, "quantization": cfg.model.quantization,
            "eos_token_ids": list(gen.eos_token_id), "chat_template": bool(tokenizer.chat_template),
            "dtype": "float32", "warnings": warnings, "seconds": round(time.time() - t0, 1)}


def _readable(folder: Path) -> None:
    """safetensors writes weights owner-only (0600) through a temporary file; an export is meant to be
    served, shared and uploaded, so its files get the usual 0644 like the config and tokenizer files."""
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o644)
