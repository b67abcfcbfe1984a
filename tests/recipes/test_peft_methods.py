"""Every peft method trains a few steps through the SFT recipe and its adapter loads with plain peft."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

import tunesmith


def _run(tiny_config, method, **lora):
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in tiny_config.items()}
    cfg["name"] = f"peft-{method}-{'-'.join(lora) or 'plain'}"
    cfg["train"].update(method=method, max_steps=2, eval_steps=0, learning_rate=1e-2)
    cfg["data"].update(validation_fraction=0.0)
    cfg["lora"].update(lora)
    return tunesmith.train(cfg, show_progress=False)


@pytest.mark.parametrize("method, lora", [
    ("lora", {"use_rslora": True}), ("lora", {"use_dora": True}), ("lora", {"plus_ratio": 16.0}),
    ("vera", {}), ("ia3", {}), ("prompt_tuning", {"num_virtual_tokens": 4}),
    ("prefix_tuning", {"num_virtual_tokens": 4}), ("p_tuning", {"num_virtual_tokens": 4})])
def test_method_trains_and_its_adapter_loads(tiny_config, tiny_model_dir, method, lora):
    run_dir = _run(tiny_config, method, **lora)
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    saved = PeftConfig.from_pretrained(run_dir / "adapter")
    assert saved.peft_type.value.lower().replace("_", "") == {
        "lora": "lora", "vera": "vera", "ia3": "ia3", "prompt_tuning": "prompttuning",
        "prefix_tuning": "prefixtuning", "p_tuning": "ptuning"}[method]
    if lora.get("use_dora"):
        assert saved.use_dora
    if lora.get("use_rslora"):
        assert saved.use_rslora
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert weights and sum(w.numel() for w in weights.values()) > 0
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")


def test_freezing_layers_in_full_fine_tuning(tiny_config, tiny_model_dir):
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in tiny_config.items()}
    cfg["train"].update(method="full", max_steps=2, eval_steps=0, learning_rate=1e-2, freeze=["layers.0."])
    run_dir = tunesmith.train(cfg, show_progress=False)
    before = load_file(next(tiny_model_dir.glob("*.safetensors")))
    after = load_file(next((run_dir / "model").glob("*.safetensors")))
    import torch

    assert torch.equal(before["model.layers.0.mlp.down_proj.weight"], after["model.layers.0.mlp.down_proj.weight"])
    assert not torch.equal(before["model.layers.1.mlp.down_proj.weight"], after["model.layers.1.mlp.down_proj.weight"])
