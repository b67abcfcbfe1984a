"""recipes/common.py's fast paths give the plain path's numbers: the label-only LM head (padded and
packed rows, chunked, soft-capped logits) and adapters fed bf16 inputs under autocast.

Tolerances: fp32 runs agree to 1e-5 relative (the head's matmul sees fewer rows, so its blocking,
not its maths, differs); bf16 autocast runs agree to 2e-3 on the loss and 2e-2 on gradients, the
rounding of bf16 matmuls over differently shaped inputs.
"""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.templates import IGNORE_INDEX
from tunesmith.recipes import common


def _lora(model_dir, dtype=torch.float32):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    for name, p in model.named_parameters():  # B starts at zero; make the adapter matter for the test
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _batch(vocab: int, packed: bool = False):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (3, 24), generator=g)
    labels = ids.clone()
    labels[:, :10] = IGNORE_INDEX  # prompt positions
    labels[1, 18:] = IGNORE_INDEX  # row 1 is padding from 18 on
    if packed:  # two documents per row, positions restarting at 12; no attention mask
        pos = torch.cat([torch.arange(12), torch.arange(12)]).repeat(3, 1)
        return {"input_ids": ids, "labels": labels, "position_ids": pos}
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _loss_and_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _compare(model, batch, num_items=None, rtol=1e-5, grad_tol=1e-5, autocast=False):
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    extra = {"num_items_in_batch": num_items} if num_items is not None else {}

    def plain():
        with ctx:
            return model(**batch, **extra).loss

    def fast():
        with ctx:
            return common.label_head_loss(common.label_head_model(model), batch, num_items)

    want, want_g = _loss_and_grads(model, plain)
    got, got_g = _loss_and_grads(model, fast)
    assert got.item() == pytest.approx(want.item(), rel=rtol)
    assert want_g.keys() == got_g.keys() and want_g
    for name in want_g:
        scale = want_g[name].abs().max().clamp(min=1e-8)
        assert ((got_g[name] - want_g[name]).abs().max() / scale).item() < grad_tol, name


@pytest.mark.parametrize("packed", [False, True])
def test_label_head_loss_and_gradients_equal_the_models_own(tiny_model_dir, packed):
    model = _lora(tiny_model_dir)
    batch = _batch(model.config.vocab_size, packed)
    _compare(model, batch)
    # Normalised by the accumulated batch's label count, as the trainer passes it.
    _compare(model, batch, num_items=torch.tensor(57))


def test_label_head_in_slices_equals_one_pass(tiny_model_dir, monkeypatch):
    model = _lora(tiny_model_dir)
    monkeypatch.setattr(common, "HEAD_CHUNK", 7)  # 31 labelled positions -> 5 recomputed slices
    _compare(model, _batch(model.config.vocab_size))


def test_label_head_under_bf16_autocast(tiny_model_dir):
    model = _lora(tiny_model_dir, dtype=torch.bfloat16)
    _compare(model, _batch(model.config.vocab_size), rtol=2e-3, grad_tol=2e-2, autocast=True)


def test_label_head_applies_gemmas_logit_softcap(tmp_path):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, final_logit_softcapping=5.0,
                           sliding_window=8, max_position_embeddings=64)
    torch.manual_seed(0)
    Gemma3ForCausalLM(cfg).save_pretrained(tmp_path)
    model = _lora(tmp_path)
    assert common.label_head_model(model) is not None
    _compare(model, _batch(300))


def test_label_head_is_off_where_it_would_be_wrong(tiny_model_dir):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    prompt = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                            PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert common.label_head_model(prompt) is None  # virtual tokens come from peft's own forward
    assert common.label_head_model(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2))) is None
    assert common.label_head_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir)) is not None


def test_adapters_fed_bf16_under_autocast_change_nothing(tiny_model_dir):
    from tunesmith.models.adapters import keep_autocast_inputs

    model = _lora(tiny_model_dir, dtype=torch.bfloat16)
    batch = _batch(model.config.vocab_size)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(**batch).loss

    want, want_g = _loss_and_grads(model, step)
    assert keep_autocast_inputs(model) > 0
    got, got_g = _loss_and_grads(model, step)
    assert got.item() == want.item()  # autocast cast the fp32 copy back to bf16 anyway: the same values
    assert all(torch.equal(got_g[n], want_g[n]) for n in want_g)
