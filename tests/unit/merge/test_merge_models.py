"""Each full-model merge method (mergekit, through tunesmith.merge.models) against a direct tensor
computation on tiny random Llama checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from merge_helpers import tiny_llama
from safetensors.torch import load_file

from tunesmith.merge.models import merge_models

W = [0.6, 0.3]
MATRIX, VECTOR = "model.layers.0.self_attn.q_proj.weight", "model.layers.1.input_layernorm.weight"


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer) -> dict:
    tmp = tmp_path_factory.mktemp("model-merge")
    out = {"tmp": tmp}
    for seed, name in enumerate(("base", "a", "b")):
        folder = tiny_llama(tmp / name, seed=seed)
        tokenizer.save_pretrained(folder)
        out[name] = folder
        out[f"{name}_w"] = load_file(folder / "model.safetensors")
    return out


def _merge(models, method, *, base=True, density=1.0, t=0.5, normalize=None, weights=W) -> dict:
    out = models["tmp"] / f"out-{method}-{density}-{normalize}"
    info = merge_models([models["a"], models["b"]], method, list(weights), out, base=str(models["base"]) if base
                        else None, density=density, t=t, normalize=normalize, dtype="float32", seed=0)
    assert info["mergekit_config"]["merge_method"] == method and info["mergekit"]
    return load_file(out / "model.safetensors")


def _tensors(models, key):
    return models["base_w"][key], models["a_w"][key], models["b_w"][key]


def test_linear_is_the_normalised_weighted_average(models):
    merged = _merge(models, "linear", base=False)
    for key in (MATRIX, VECTOR):
        _, a, b = _tensors(models, key)
        torch.testing.assert_close(merged[key], (W[0] * a + W[1] * b) / sum(W))


def test_linear_without_normalising_is_the_weighted_sum(models):
    merged = _merge(models, "linear", base=False, normalize=False)
    _, a, b = _tensors(models, MATRIX)
    torch.testing.assert_close(merged[MATRIX], W[0] * a + W[1] * b)


def test_task_arithmetic_adds_the_weighted_task_vectors_to_the_base(models):
    merged = _merge(models, "task_arithmetic")
    base, a, b = _tensors(models, MATRIX)
    torch.testing.assert_close(merged[MATRIX], base + W[0] * (a - base) + W[1] * (b - base))


def _ties(base, a, b, density: float, normalize: bool = True):
    """TIES as mergekit defines it: trim each task vector to its top `density` by magnitude, elect each
    entry's sign by the sum of the weighted vectors, then average the agreeing entries by weight
    (or, not normalised, add them)."""
    deltas = []
    for d in (a - base, b - base):
        k = int(density * d.numel())
        keep = torch.zeros(d.numel())
        keep[d.abs().flatten().argsort(descending=True)[:k]] = 1
        deltas.append(d * keep.view(d.shape))
    weighted = torch.stack([w * d for w, d in zip(W, deltas)])
    elected = torch.where(weighted.sum(0) >= 0, 1.0, -1.0)
    agree = (weighted.sign() == elected).float()
    weights = torch.tensor(W).view(2, *([1] * base.dim())) * agree
    divisor = weights.sum(0)
    divisor[divisor == 0] = 1
    return base + (weighted * agree).sum(0) / (divisor if normalize else 1)


@pytest.mark.parametrize("density", [1.0, 0.5])
def test_ties_trims_elects_and_averages_the_task_vectors(models, density):
    merged = _merge(models, "ties", density=density)
    torch.testing.assert_close(merged[MATRIX], _ties(*_tensors(models, MATRIX), density), rtol=1e-5, atol=1e-6)


def test_dare_at_density_one_drops_nothing(models):
    # dare_ties: the sign election of ties on the undropped vectors, summed (mergekit does not
    # normalise dare_ties); dare_linear: task arithmetic.
    base, a, b = _tensors(models, MATRIX)
    torch.testing.assert_close(_merge(models, "dare_ties")[MATRIX], _ties(base, a, b, 1.0, normalize=False),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_merge(models, "dare_linear")[MATRIX], base + W[0] * (a - base) + W[1] * (b - base))


def test_dare_drops_part_of_each_task_vector(models):
    base, a, b = _tensors(models, MATRIX)
    merged = _merge(models, "dare_linear", density=0.5)[MATRIX]
    # some entries keep neither parent's change (both dropped), which density 1 never does
    unchanged = ((merged - base).abs() < 1e-7).float().mean().item()
    assert 0.1 < unchanged < 0.45
    assert not torch.allclose(merged, base + W[0] * (a - base) + W[1] * (b - base))


def _slerp(t: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two tensors as flat vectors: along the great circle between their
    directions, sin((1 - t) theta) x + sin(t theta) y over sin(theta)."""
    x2, y2 = x.flatten().double(), y.flatten().double()
    theta = torch.acos(((x2 / x2.norm()) @ (y2 / y2.norm())).clamp(-1, 1))
    return ((torch.sin((1 - t) * theta) * x2 + torch.sin(t * theta) * y2) / torch.sin(theta)).reshape(x.shape).float()


def test_slerp_interpolates_from_the_first_parent_to_the_second(models):
    merged = _merge(models, "slerp", base=False, t=0.3)
    for key in (MATRIX, VECTOR):
        _, a, b = _tensors(models, key)
        torch.testing.assert_close(merged[key], _slerp(0.3, a, b), rtol=1e-4, atol=1e-6)


def test_model_stock_moves_from_the_base_towards_the_average_by_the_angle(models):
    merged = _merge(models, "model_stock")
    base, a, b = _tensors(models, MATRIX)
    da, db = (a - base).flatten(), (b - base).flatten()
    cos = (da @ db) / (da.norm() * db.norm())
    t = 2 * cos / (1 + cos)  # Model Stock with two fine-tunes (Jang et al. 2024, eq. 6)
    torch.testing.assert_close(merged[MATRIX], t * (a + b) / 2 + (1 - t) * base, rtol=1e-4, atol=1e-6)


def test_merged_folder_loads_as_a_model_with_the_first_parents_tokenizer(models):
    _merge(models, "linear", base=False)
    out = models["tmp"] / "out-linear-1.0-None"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 32
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert "merge_method: linear" in (out / "mergekit_config.yml").read_text()
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
