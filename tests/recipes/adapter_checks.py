"""Checks on a trained adapter shared by the RL recipe tests (GRPO, PPO)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def lora_b(adapter_dir: Path) -> list[torch.Tensor]:
    """The adapter's LoRA B matrices (zero at the start: non-zero ones were trained)."""
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    return [w for k, w in weights.items() if "lora_B" in k]


def loads_with_plain_peft(base_dir: Path, adapter_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0
