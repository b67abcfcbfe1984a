"""Small hand-made parents for the merge unit tests: a tiny Llama and LoRA adapters with random
(non-zero) A and B factors, and tiny random full checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

MODULE = "base_model.model.model.layers.0.self_attn.q_proj"  # a module every adapter here adapts
TARGETS = ["q_proj", "v_proj", "up_proj"]


def tiny_llama(folder: Path, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # norms start at exactly 1 in every model: make them differ, as after training
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    return folder


def lora_adapter(base_dir: Path, folder: Path, tokenizer, *, r: int, alpha: int, seed: int,
                 rslora: bool = False) -> Path:
    """A LoRA adapter whose A and B are both random, so each has a non-zero delta B @ A."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS, use_rslora=rslora,
                                      lora_dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # merged adapters carry their first parent's tokenizer
    return folder


def factors(adapter_dir: Path, module: str = MODULE) -> tuple[torch.Tensor, torch.Tensor]:
    w = load_file(Path(adapter_dir) / "adapter_model.safetensors")
    return w[f"{module}.lora_A.weight"], w[f"{module}.lora_B.weight"]


def scaling(adapter_dir: Path) -> float:
    import json

    cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    return cfg["lora_alpha"] / (cfg["r"] ** 0.5 if cfg.get("use_rslora") else cfg["r"])


def delta(adapter_dir: Path, module: str = MODULE) -> torch.Tensor:
    """The weight update an adapter makes to `module`: scaling * B @ A."""
    a, b = factors(adapter_dir, module)
    return scaling(adapter_dir) * b @ a


def parent(index: int, adapter_dir: Path, base_dir: Path, r: int):
    """A Parent as parents.inspect would make it for a LoRA run on `base_dir`."""
    from tunesmith.config import load_config
    from tunesmith.merge.parents import Parent

    run_cfg = load_config({"model": {"name": str(base_dir)}, "data": {"train": ["unused.jsonl"]}})
    return Parent(index, adapter_dir, f"p{index}", adapter_dir, run_cfg, {}, r, str(base_dir))
