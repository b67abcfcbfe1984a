"""The shipped MoE config (configs/moe-lora.yaml) trains two steps through `tunesmith.train` on tiny
random mixture-of-experts checkpoints (Qwen2-MoE, Mixtral, OLMoE; 2 layers, hidden 32, 4 experts)
saved with the real SmolLM2 tokenizer, with only model.name and the run size overridden: its
config validates, the router load-balancing loss is logged each step, the adapter trains, and the
run reloads (plain peft, and tunesmith's own loader for generation).

The config names a hub model that cannot be downloaded here, so tests/test_shipped_configs.py and
tests/recipes/test_shipped_configs_train.py leave it to this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunesmith

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "moe-lora.yaml"
ARCHS = {  # transformers class names and each architecture's own expert fields
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  {"num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48}),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {"num_local_experts": 4}),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", {"num_experts": 4}),
}


@pytest.fixture(scope="module")
def moe_dirs(tmp_path_factory, tokenizer) -> dict[str, Path]:
    """{arch: folder}: a tiny random MoE checkpoint of each architecture with the SmolLM2 tokenizer."""
    import torch
    import transformers

    dirs = {}
    for arch, (config_cls, model_cls, fields) in ARCHS.items():
        torch.manual_seed(0)
        config = getattr(transformers, config_cls)(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, num_experts_per_tok=2, max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **fields)
        out = tmp_path_factory.mktemp(f"tiny-{arch}")
        getattr(transformers, model_cls)(config).save_pretrained(out)
        tokenizer.save_pretrained(out)
        dirs[arch] = out
    return dirs


def _overrides(model_dir: Path, tmp_path: Path, **more) -> dict:
    return {"model.name": str(model_dir), "output_dir": str(tmp_path), "train.max_steps": 2, "train.batch_size": 2,
            "train.eval_steps": 0, "train.precision": "fp32", "train.logging_steps": 1, "train.warmup_ratio": 0.0,
            "train.learning_rate": 1e-2, **more}


def test_shipped_moe_config_validates_with_a_tiny_moe(moe_dirs):
    from tunesmith.recipes import KINDS

    cfg = tunesmith.load_config(CONFIG, {"model.name": str(moe_dirs["qwen2_moe"])})
    assert cfg.moe.targets and cfg.train.method == "lora"
    train = tunesmith.validate(cfg, kinds=KINDS[cfg.recipe])["data"]["train"]
    assert train["kept"] == train["rows"] > 0 and 0 < train["loss_token_fraction"] < 1


@pytest.mark.parametrize("arch", list(ARCHS))
def test_shipped_moe_config_trains_logs_aux_loss_and_reloads(arch, moe_dirs, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = tunesmith.train(CONFIG, _overrides(moe_dirs[arch], tmp_path), show_progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 2
    info = manifest["model"]["moe"]
    assert info["router_aux_loss_coef"] == 0.01 and info["router_aux_loss_coef_from"] == "moe.router_aux_loss_coef"
    assert sorted(info["target_parameters"]) == ["mlp.experts.down_proj", "mlp.experts.gate_up_proj",
                                                 "mlp.gate.weight"]

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["aux_loss"] > 0 for r in steps)

    # the adapter trained (lora_B starts at zero) and loads with plain peft onto the untouched base
    base = AutoModelForCausalLM.from_pretrained(moe_dirs[arch])
    loaded = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    lora_b = [p for n, p in loaded.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)
    assert any(".experts." in n for n, _ in loaded.named_parameters() if "lora_B" in n)
    ids = torch.tensor([[1, 20, 300, 4000]])
    with torch.no_grad():
        tuned = loaded(input_ids=ids).logits
        with loaded.disable_adapter():
            plain = loaded(input_ids=ids).logits
    assert not torch.allclose(tuned, plain)

    if arch == "qwen2_moe":  # tunesmith's own reload of the run (generate, eval, serve use it)
        out = tunesmith.generate(run_dir, "Say hi.", max_new_tokens=3)
        assert isinstance(out[0] if isinstance(out, list) else out, str)


def test_a_dense_model_with_moe_targets_is_refused_before_training(tiny_model_dir, tmp_path):
    with pytest.raises(tunesmith.TunesmithError, match="LlamaForCausalLM is not a mixture-of-experts model"):
        tunesmith.train(CONFIG, _overrides(tiny_model_dir, tmp_path), show_progress=False)
    assert not (tmp_path / "moe-lora").exists(), "refused before the run directory was made"
