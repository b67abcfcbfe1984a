"""Each adapter merge method (peft's add_weighted_adapter, through tunesmith.merge.adapters) against a
direct tensor computation on hand-made LoRA factors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from merge_helpers import factors, lora_adapter, parent, scaling, tiny_llama

from tunesmith.merge.adapters import merge_adapters

WEIGHTS = [0.7, 0.4]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tokenizer) -> dict:
    tmp = tmp_path_factory.mktemp("adapter-merge")
    base = tiny_llama(tmp / "base")
    dirs = [lora_adapter(base, tmp / "a", tokenizer, r=4, alpha=8, seed=1),
            lora_adapter(base, tmp / "b", tokenizer, r=4, alpha=16, seed=2),
            lora_adapter(base, tmp / "c8", tokenizer, r=8, alpha=8, seed=3, rslora=True)]
    return {"tmp": tmp, "base": base, "a": dirs[0], "b": dirs[1], "c8": dirs[2]}


def _merge(setup, method, names=("a", "b"), weights=WEIGHTS, ranks=(4, 4), **kw):
    out = setup["tmp"] / f"out-{method}-{'-'.join(names)}-{kw.get('density', '')}"
    parents = [parent(i, setup[n], setup["base"], r) for i, (n, r) in enumerate(zip(names, ranks))]
    info = merge_adapters(parents, method, list(weights), out, density=kw.pop("density", 1.0), **kw)
    return out, info


def _signed_sqrt_weights(setup, names=("a", "b"), weights=WEIGHTS):
    """peft's factor weights: A gets sign(w) sqrt(|w| s), B gets sqrt(|w| s) (their product is w s)."""
    ws = [w * scaling(setup[n]) for n, w in zip(names, weights)]
    return [math.copysign(math.sqrt(abs(w)), w) for w in ws], [math.sqrt(abs(w)) for w in ws]


def _ties(tensors: list[torch.Tensor], weights: list[float], density: float, sign: str = "total"):
    """TIES from the paper: trim each task tensor to its top `density` by magnitude, elect each entry's
    sign from the trimmed tensors (by their sum, or by count; the weights apply after, as the paper's
    scaling), then average the weighted entries whose sign agrees."""
    trimmed = []
    for t in tensors:
        k = int(density * t.numel())
        keep = torch.zeros(t.numel())
        keep[t.abs().flatten().argsort(descending=True)[:k]] = 1
        trimmed.append(t * keep.view(t.shape))
    stacked = torch.stack(trimmed)
    votes = stacked.sum(0) if sign == "total" else stacked.sign().sum(0)
    elected = torch.where(votes >= 0, 1.0, -1.0)
    agree = stacked.sign() == elected
    weighted = torch.stack([w * t for w, t in zip(weights, trimmed)])
    return (weighted * agree).sum(0) / agree.sum(0).clamp(min=1)


def test_cat_delta_is_the_weighted_sum_of_the_parents_deltas(setup):
    out, info = _merge(setup, "cat")
    a, b = factors(out)
    expected = sum(w * scaling(setup[n]) * factors(setup[n])[1] @ factors(setup[n])[0]
                   for n, w in zip("ab", WEIGHTS))
    assert info["r"] == 8 and a.shape[0] == 8  # cat stacks the ranks
    torch.testing.assert_close(scaling(out) * b @ a, expected, rtol=1e-5, atol=1e-6)


def test_cat_takes_different_ranks_and_an_rslora_parent(setup):
    # The rsLoRA parent scales by alpha / sqrt(r); its merged copy must not be scaled a second time.
    out, info = _merge(setup, "cat", names=("c8", "a"), ranks=(8, 4))
    assert info["r"] == 12 and not json.loads((out / "adapter_config.json").read_text())["use_rslora"]
    a, b = factors(out)
    expected = sum(w * scaling(setup[n]) * factors(setup[n])[1] @ factors(setup[n])[0]
                   for n, w in zip(("c8", "a"), WEIGHTS))
    torch.testing.assert_close(scaling(out) * b @ a, expected, rtol=1e-5, atol=1e-6)


def test_svd_is_the_rank_truncated_svd_of_the_summed_delta(setup):
    out, info = _merge(setup, "svd", svd_rank=3)
    a, b = factors(out)
    total = sum(w * scaling(setup[n]) * factors(setup[n])[1] @ factors(setup[n])[0] for n, w in zip("ab", WEIGHTS))
    u, s, vh = torch.linalg.svd(total)
    expected = u[:, :3] @ torch.diag(s[:3]) @ vh[:3]
    assert info["r"] == 3 and a.shape[0] == 3
    torch.testing.assert_close(scaling(out) * b @ a, expected, rtol=1e-4, atol=1e-5)


def test_linear_adds_the_factors_with_square_root_weights(setup):
    out, _ = _merge(setup, "linear")
    wa, wb = _signed_sqrt_weights(setup)
    a, b = factors(out)
    torch.testing.assert_close(a, sum(w * factors(setup[n])[0] for n, w in zip("ab", wa)))
    torch.testing.assert_close(b, sum(w * factors(setup[n])[1] for n, w in zip("ab", wb)))


@pytest.mark.parametrize("density,sign", [(1.0, "total"), (0.5, "total"), (0.5, "frequency")])
def test_ties_trims_elects_signs_and_averages_each_factor(setup, density, sign):
    out, _ = _merge(setup, "ties", density=density, majority_sign=sign)
    wa, wb = _signed_sqrt_weights(setup)
    a, b = factors(out)
    torch.testing.assert_close(a, _ties([factors(setup[n])[0] for n in "ab"], wa, density, sign))
    torch.testing.assert_close(b, _ties([factors(setup[n])[1] for n in "ab"], wb, density, sign))


def test_ties_svd_merges_the_full_deltas_then_factors_them(setup):
    out, _ = _merge(setup, "ties_svd", density=1.0)
    deltas = [scaling(setup[n]) * factors(setup[n])[1] @ factors(setup[n])[0] for n in "ab"]
    merged = _ties(deltas, WEIGHTS, 1.0)
    u, s, vh = torch.linalg.svd(merged)
    a, b = factors(out)
    torch.testing.assert_close(scaling(out) * b @ a, u[:, :4] @ torch.diag(s[:4]) @ vh[:4], rtol=1e-4, atol=1e-5)


def test_dare_at_density_one_drops_nothing(setup):
    linear, _ = _merge(setup, "linear")
    ties, _ = _merge(setup, "ties", density=1.0)
    for method, same_as in (("dare_linear", linear), ("dare_ties", ties)):
        out, _ = _merge(setup, method, density=1.0)
        for got, want in zip(factors(out), factors(same_as)):
            torch.testing.assert_close(got, want)


def test_dare_linear_drops_values_at_random_and_rescales_the_rest(setup):
    density = 0.5
    out, _ = _merge(setup, "dare_linear", density=density, seed=3)
    again, _ = _merge(setup, "dare_linear", density=density, seed=3)
    torch.testing.assert_close(factors(out)[0], factors(again)[0])  # the seed makes the drop repeatable
    wa, _ = _signed_sqrt_weights(setup)
    x, y = (w * factors(setup[n])[0] / density for n, w in zip("ab", wa))
    got = factors(out)[0]
    # Each merged value is what is left of the two parents' values: neither, one or both kept.
    choices = torch.stack([torch.zeros_like(x), x, y, x + y])
    assert ((choices - got).abs().min(0).values < 1e-5).all()
    dropped = (got == 0).float().mean().item()
    assert 0.1 < dropped < 0.45  # both dropped: 1/4 of the values in expectation


def test_magnitude_prune_keeps_each_factors_largest_values(setup):
    out, _ = _merge(setup, "magnitude_prune", density=0.5)
    wa, wb = _signed_sqrt_weights(setup)

    def top(t):
        k = int(0.5 * t.numel())
        keep = torch.zeros(t.numel())
        keep[t.abs().flatten().argsort(descending=True)[:k]] = 1
        return t * keep.view(t.shape)

    a, b = factors(out)
    torch.testing.assert_close(a, sum(w * top(factors(setup[n])[0]) for n, w in zip("ab", wa)))
    torch.testing.assert_close(b, sum(w * top(factors(setup[n])[1]) for n, w in zip("ab", wb)))


def test_merged_adapter_is_a_plain_peft_adapter_with_the_tokenizer(setup):
    out, info = _merge(setup, "ties", density=0.5)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(setup["base"]), out)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0
    assert (out / "tokenizer_config.json").is_file() and set(info["target_modules"]) == {"q_proj", "v_proj", "up_proj"}
