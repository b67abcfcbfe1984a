"""Quantized bases (QLoRA nf4, 8-bit) through bitsandbytes: LoRA gradients against a dequantized
reference, the CPU repack trap, preflight, and a short QLoRA run whose adapter loads on a plain base."""

from __future__ import annotations

import sys

import bitsandbytes as bnb  # a core dependency: missing, these tests should fail, not skip
import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.models import quant
from tunesmith.models.loading import load_model, resolve


def _lora(model):
    """LoRA on every linear with a random B (peft's default B=0 would leave A's gradient zero)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                            init_lora_weights=False))


def _batch(model):
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=gen).to(model.device)
    return {"input_ids": ids, "labels": ids}


def _eval_forward(model):
    """What a generation before training, or the Trainer's evaluation, does: eval mode, no grad."""
    model.eval()
    with torch.no_grad():
        model(**_batch(model))


def _lora_grads(peft_model) -> tuple[float, dict]:
    peft_model.train()
    loss = peft_model(**_batch(peft_model)).loss
    loss.backward()
    return loss.item(), {n: (None if p.grad is None else p.grad.detach().float().clone())
                         for n, p in peft_model.named_parameters() if p.requires_grad}


def _dequantized_weight(module):
    if isinstance(module, bnb.nn.Linear4bit):
        return bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
    state = module.state if module.state.CB is not None else module.weight  # moved there by a forward
    # The same arithmetic as bitsandbytes' training matmul on CPU (MatMul8bitFp).
    return state.CB.float().mul_(state.SCB.float().unsqueeze(1).mul(1.0 / 127.0))


def _reference(quantized_peft, model_dir):
    """A plain fp32 model holding the quantized model's weights dequantized, with the same LoRA."""
    plain = load_model(resolve(str(model_dir))).to(quantized_peft.device)
    # peft wraps each quantized layer: base_model.model.<name>.base_layer
    quantized = {n.removeprefix("base_model.model.").removesuffix(".base_layer"): m
                 for n, m in quantized_peft.named_modules() if isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))}
    copied = 0
    with torch.no_grad():
        for name, module in plain.named_modules():
            if name in quantized:
                module.weight.copy_(_dequantized_weight(quantized[name]))
                copied += 1
    assert copied == len(quantized) == 14  # 7 projections x 2 layers: the tied head stays unquantized
    ref = _lora(plain)
    lora = {n: p for n, p in quantized_peft.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if p.requires_grad:
                p.copy_(lora[n])
    assert {n for n, p in ref.named_parameters() if p.requires_grad} == set(lora)
    return ref


def _rel_errors(grads, ref_grads) -> dict:
    return {n: (float("inf") if g is None else float((g - ref_grads[n]).norm() / ref_grads[n].norm()))
            for n, g in grads.items()}


def test_qlora_nf4_gradients_match_a_dequantized_reference_after_an_eval_forward(tiny_model_dir):
    model = load_model(resolve(str(tiny_model_dir)), quantization="nf4")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.support_avx512bf16_for_cpu is False for m in layers)
    _eval_forward(model)  # the trap: on an AVX512-BF16 CPU this would repack the weights unguarded
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    peft_model = _lora(model)
    loss, grads = _lora_grads(peft_model)
    ref_loss, ref_grads = _lora_grads(_reference(peft_model, tiny_model_dir))
    errors = _rel_errors(grads, ref_grads)
    assert len(errors) == 28 and all(ref_grads[n].norm() > 0 for n in errors)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    assert max(errors.values()) < 1e-5, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.filterwarnings("ignore:.*an autograd kernel was not registered")  # the very cut this test shows
def test_without_the_guard_the_cpu_repack_cuts_the_gradient(tiny_model_dir, monkeypatch):
    """The guard is what makes the test above pass: unguarded, the same steps give wrong gradients."""
    if str(quant.device_map()[""]) != "cpu" or not bnb.functional.has_avx512bf16():
        pytest.skip("bitsandbytes repacks 4-bit weights only on CPUs with AVX512-BF16; not this machine")
    monkeypatch.setattr(quant, "keep_training_layout", lambda model: 0)
    model = load_model(resolve(str(tiny_model_dir)), quantization="nf4")
    _eval_forward(model)
    assert all(m.weight.quant_state.packing_format_for_cpu for m in model.modules()
               if isinstance(m, bnb.nn.Linear4bit))
    peft_model = _lora(model)
    _, grads = _lora_grads(peft_model)
    _, ref_grads = _lora_grads(_reference_from_fresh_load(tiny_model_dir, peft_model))
    errors = _rel_errors(grads, ref_grads)
    first_layer = [e for n, e in errors.items() if ".layers.0." in n]
    assert min(first_layer) > 0.05, first_layer  # every first-layer LoRA gradient is wrong


def _reference_from_fresh_load(model_dir, peft_model):
    """After a repack the weights can no longer be dequantized as stored, so the reference comes
    from a fresh (identically quantized) load carrying the same LoRA weights."""
    fresh = _lora(load_model(resolve(str(model_dir)), quantization="nf4"))
    lora = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            if p.requires_grad:
                p.copy_(lora[n])
    return _reference(fresh, model_dir)


def test_int8_lora_gets_the_dequantized_gradients(tiny_model_dir):
    model = load_model(resolve(str(tiny_model_dir)), quantization="int8")
    assert sum(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules()) == 14
    _eval_forward(model)  # LLM.int8() in eval mode; must leave the stored weight as it was
    peft_model = _lora(model)
    _, grads = _lora_grads(peft_model)
    assert all(g is not None and g.norm() > 0 for g in grads.values())
    _, ref_grads = _lora_grads(_reference(peft_model, tiny_model_dir))
    errors = _rel_errors(grads, ref_grads)
    assert max(errors.values()) < 1e-4, sorted(errors.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_preflight_reports_a_working_backend(quantization):
    report = quant.preflight(quantization)
    assert report["backend"] == "bitsandbytes" and report["device"] in ("cpu", "cuda")
    assert report["version"] == bnb.__version__
    assert report["forward_rel_err"] < report["tolerance"] and report["grad_rel_err"] < 1e-3
    if report["device"] == "cpu":  # bitsandbytes' CPU paths dequantize and multiply in fp32: exact
        assert report["forward_rel_err"] < 1e-6 and report["grad_rel_err"] < 1e-6
        assert report["cpu_repack_guard"] == (quantization == "nf4" and bool(bnb.functional.has_avx512bf16()))


def test_validate_reports_the_quantized_path(tiny_config):
    import tunesmith

    cfg = {**tiny_config, "model": {**tiny_config["model"], "quantization": "fp4"}}
    report = tunesmith.validate(cfg)["quantization"]
    assert report["backend"] == "bitsandbytes" and report["quantization"] == "fp4"


def test_preflight_explains_a_missing_bitsandbytes(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` raise ImportError
    with pytest.raises(TunesmithError) as e:
        quant.preflight("nf4")
    text = str(e.value)
    assert "model.quantization" in text and "cannot be imported" in text and "pip install" in text


def test_preflight_refuses_an_old_bitsandbytes(monkeypatch):
    monkeypatch.setattr(bnb, "__version__", "0.45.1")
    with pytest.raises(TunesmithError, match=r"bitsandbytes >= 0\.48, found 0\.45\.1"):
        quant.preflight("fp4")


@pytest.mark.filterwarnings("ignore:.*an autograd kernel was not registered")  # the very cut this test shows
def test_preflight_catches_a_layer_whose_gradient_is_cut(monkeypatch):
    if not bnb.functional.has_avx512bf16():
        pytest.skip("no AVX512-BF16: bitsandbytes never repacks here, so there is no cut to catch")
    monkeypatch.setattr(quant, "keep_training_layout", lambda model: 0)
    with pytest.raises(TunesmithError, match="wrong numbers"):
        quant.preflight("nf4")


def test_qlora_run_trains_and_its_adapter_loads_on_the_plain_base(tiny_config, tiny_model_dir):
    from peft import PeftModel

    import tunesmith
    from tunesmith.runs import read_manifest

    # bf16: 4-bit layers compute in bf16 under autocast; eval at step 2 runs the no-grad forward
    # that would break the remaining steps without the guard.
    cfg = {**tiny_config, "model": {**tiny_config["model"], "quantization": "nf4"},
           "train": {**tiny_config["train"], "precision": "bf16"}}
    run_dir = tunesmith.train(cfg, show_progress=False)
    result = read_manifest(run_dir)["result"]
    assert result["steps"] == 4 and 0 < result["train_loss"] < 20 and result["eval_loss"] < 20
    base = load_model(resolve(str(tiny_model_dir)))
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 14 and all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: it trained
    out = model(**_batch(model))
    assert torch.isfinite(out.logits).all()
