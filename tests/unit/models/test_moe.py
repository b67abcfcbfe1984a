"""LoRA on mixture-of-experts models (tunesmith/models/moe.py): tiny random Mixtral, Qwen2-MoE and
OLMoE (2 layers, hidden 32, 4 experts, 2 per token). For each moe.targets option: exactly the right
weights train, every one gets a gradient, and the saved adapter reloads with plain peft to the same
logits. The router load-balancing loss: positive, weighted by the coefficient, logged, kept out of
evaluation, and counted once per optimizer step under gradient accumulation."""

from __future__ import annotations

import copy
import re

import pytest

from tunesmith.config import LoraConfig, load_config
from tunesmith.errors import TunesmithError
from tunesmith.models import adapters, moe

COMMON = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, num_experts_per_tok=2, max_position_embeddings=128, pad_token_id=0,
              bos_token_id=1, eos_token_id=2)
ARCHS = {  # transformers class names and each architecture's own expert fields
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {"num_local_experts": 4}),
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  {"num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48}),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", {"num_experts": 4}),
}
# What each target adapts: a pattern every adapted weight name matches, and the adapted weights per layer.
EXPECTED = {
    "experts": (r"\.mlp\.experts\.", 2),  # the fused gate_up_proj and down_proj tensors
    "router": (r"\.mlp\.(gate|shared_expert_gate)\.", None),  # 1; Qwen-MoE also its shared expert's gate
    "shared": (r"\.mlp\.shared_expert\.", 3),  # gate_proj, up_proj, down_proj
    "attention": (r"\.self_attn\.", 4),  # q, k, v, o
}
LORA = LoraConfig(r=4, alpha=8, dropout=0.0)


def tiny_moe(arch: str, **extra):
    import torch
    import transformers

    config_cls, model_cls, fields = ARCHS[arch]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**COMMON, **fields, **extra)
    return getattr(transformers, model_cls)(config)


def _batch(seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, COMMON["vocab_size"], (2, 12), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _adapted_weights(model) -> set[str]:
    """Base weights that carry a LoRA pair: names up to their lora_A/lora_B (fused experts nest a
    `base_layer` per extra tensor, so the count is of A matrices)."""
    return {n for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_moe_models_are_told_from_dense_ones(arch):
    from transformers import LlamaConfig

    assert moe.is_moe(tiny_moe(arch).config) and moe.expert_count(tiny_moe(arch).config) == 4
    assert not moe.is_moe(LlamaConfig(**{k: v for k, v in COMMON.items() if k != "num_experts_per_tok"}))


@pytest.mark.parametrize("target", list(EXPECTED))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_each_target_trains_only_its_weights_and_reloads_with_plain_peft(arch, target, tmp_path):
    import torch
    from peft import PeftModel

    base = tiny_moe(arch)
    if target == "shared" and arch != "qwen2_moe":  # only Qwen-MoE has a shared expert
        with pytest.raises(TunesmithError, match=r"no shared part.*remove \['shared'\].*'experts', 'router'"):
            adapters.apply(base, "lora", LORA, moe_targets=[target])
        return
    fresh = copy.deepcopy(base)
    model = adapters.apply(base, "lora", LORA, moe_targets=[target])

    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    pattern, per_layer = EXPECTED[target]
    assert trainable and all("lora_" in n and re.search(pattern, n) for n in trainable), trainable
    per_layer = per_layer or (2 if arch == "qwen2_moe" else 1)
    assert len(_adapted_weights(model)) == per_layer * COMMON["num_hidden_layers"]

    # lora_B starts at zero (no gradient reaches A): give B values so every matrix must get one
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    model.train()
    model(**_batch()).loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not no_grad
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)

    model.eval()
    with torch.no_grad():
        before = model(**_batch(1)).logits
    model.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        after = loaded(**_batch(1)).logits
        with loaded.disable_adapter():
            base_logits = loaded(**_batch(1)).logits
    assert torch.allclose(before, after, atol=1e-6)
    assert not torch.allclose(before, base_logits, atol=1e-4), "the adapter changed nothing"


def test_all_targets_together_and_lora_target_modules_added():
    model = adapters.apply(tiny_moe("qwen2_moe"), "lora", LoraConfig(r=4, alpha=8, dropout=0.0,
                                                                    target_modules=["lm_head"]),
                           moe_targets=["experts", "router", "shared", "attention"])
    config = model.peft_config["default"]
    # per-layer suffixes, not one name per layer; lora.target_modules (not all-linear) added as given
    assert sorted(config.target_parameters) == ["mlp.experts.down_proj", "mlp.experts.gate_up_proj", "mlp.gate.weight"]
    assert "mlp.shared_expert_gate" in config.target_modules and "self_attn.q_proj" in config.target_modules
    assert "lm_head" in config.target_modules
    assert len(_adapted_weights(model)) == 2 * (2 + 2 + 3 + 4) + 1
    assert moe.adapted(model)["target_parameters"] == list(config.target_parameters)


def test_dense_model_is_refused_naming_the_key(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    with pytest.raises(TunesmithError, match="not a mixture-of-experts model") as e:
        adapters.apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir), "lora", LORA, moe_targets=["experts"])
    assert e.value.problems[0].field == "moe.targets"


def test_router_coefficient_on_a_dense_model_is_refused_before_the_run_exists(tiny_model_dir, tmp_path):
    """moe.router_aux_loss_coef on a dense model would be silently ignored (router_aux returns None)."""
    import tunesmith

    (tmp_path / "t.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    with pytest.raises(TunesmithError, match="not a mixture-of-experts model") as e:
        tunesmith.train({"model": {"name": str(tiny_model_dir)}, "data": {"train": [str(tmp_path / "t.jsonl")]},
                         "output_dir": str(tmp_path / "runs"), "moe": {"router_aux_loss_coef": 0.02}},
                        show_progress=False)
    assert e.value.problems[0].field == "moe.router_aux_loss_coef"
    assert "remove moe.router_aux_loss_coef" in str(e.value) and not (tmp_path / "runs").exists()


def test_suffixes_fall_back_to_full_names_when_they_would_catch_more():
    names = {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"}
    assert moe._short(names, sorted(names)) == ["self_attn.q_proj"]
    universe = [*names, "vision.layers.0.self_attn.q_proj"]
    assert moe._short(names, universe) == sorted(names)


# --------------------------------------------------------------------------- router load-balancing loss


@pytest.mark.parametrize("arch, own", [("mixtral", 0.001), ("qwen2_moe", 0.001), ("olmoe", 0.01)])
def test_router_aux_settings_come_from_the_model_or_the_config(arch, own, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = tiny_moe(arch)
    info = moe.router_aux(model, None)
    assert info["router_aux_loss_coef"] == pytest.approx(own)
    assert info["router_aux_loss_coef_from"] == "the model's config"
    assert (info["experts"], info["experts_per_token"]) == (4, 2)
    assert moe.router_aux(model, 0.5)["router_aux_loss_coef_from"] == "moe.router_aux_loss_coef"
    assert moe.router_aux(AutoModelForCausalLM.from_pretrained(tiny_model_dir), 0.5) is None


def _trainer(model, coef: float, tmp_path):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], disable_tqdm=True)
    return moe.aux_loss_trainer(Trainer, coef)(model=model, args=args)


def test_aux_loss_is_positive_weighted_logged_and_kept_out_of_evaluation(tmp_path):
    import torch

    model = adapters.apply(tiny_moe("olmoe"), "lora", LORA, moe_targets=["experts", "router"])
    batch = _batch()
    model.train()
    with torch.no_grad():
        out = model(**batch, output_router_logits=True)
    aux, ce = out.aux_loss.item(), out.loss.item() - 0.01 * out.aux_loss.item()  # the model's own coef: 0.01
    assert aux > 0

    losses = {}
    for coef in (0.0, 0.5):
        trainer = _trainer(model, coef, tmp_path)
        trainer.current_gradient_accumulation_steps = 1
        with torch.no_grad():
            losses[coef] = trainer.compute_loss(model, batch).item()
        trainer.log({"loss": losses[coef]})
        assert trainer.state.log_history[-1]["aux_loss"] == pytest.approx(aux, rel=1e-5)
    assert losses[0.0] == pytest.approx(ce, rel=1e-5)  # the model's own coefficient is off
    assert losses[0.5] - losses[0.0] == pytest.approx(0.5 * aux, rel=1e-4)

    # normalised over 4 accumulated micro-batches (num_items_in_batch), the Trainer does not divide
    # again: the aux term is divided here, so it counts once per optimizer step
    trainer.current_gradient_accumulation_steps = 4
    n = int((batch["labels"][:, 1:] != -100).sum()) * 4
    with torch.no_grad():
        scaled = trainer.compute_loss(model, batch, num_items_in_batch=n).item()
    assert scaled == pytest.approx(ce / 4 + 0.5 * aux / 4, rel=1e-4)

    model.eval()  # evaluation: the language-model loss alone
    with torch.no_grad():
        assert trainer.compute_loss(model, batch).item() == pytest.approx(ce, rel=1e-5)
    trainer.log({"eval_loss": 1.0})
    assert "aux_loss" not in trainer.state.log_history[-1]


# --------------------------------------------------------------------------- config checks


def _problems(tmp_path, **moe_and_more) -> str:
    (tmp_path / "t.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    raw = {"data": {"train": str(tmp_path / "t.jsonl")}, "lora": {"dropout": 0.0}}
    for key, value in moe_and_more.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[key] = value
    try:
        load_config(raw)
    except TunesmithError as e:
        return str(e)
    return ""


def test_config_checks(tmp_path):
    assert _problems(tmp_path, moe__targets=["experts", "router", "shared", "attention"],
                     moe__router_aux_loss_coef=0.02) == ""
    assert "did you mean 'experts'" in _problems(tmp_path, moe__targets=["expert"])
    assert "moe.router_aux_loss_coef" in _problems(tmp_path, moe__router_aux_loss_coef=-1.0)
    text = _problems(tmp_path, moe__targets=["experts"], lora__dropout=0.05)
    assert "lora.dropout" in text and "set lora.dropout: 0" in text
    assert "lora.use_dora" in _problems(tmp_path, moe__targets=["router"], lora__use_dora=True)
    assert _problems(tmp_path, moe__targets=["shared"], lora__dropout=0.1) == ""  # Linears keep their dropout
    assert "train.method is vera" in _problems(tmp_path, moe__targets=["attention"], train__method="vera")
    assert "not dpo" in _problems(tmp_path, moe__targets=["experts"], recipe="dpo")
