"""PPO's maths (recipes/ppo_math.py): the clipped policy loss against trl's GRPO loss, GAE and
whitening against direct loops, the clipped value loss and the completion mask by hand."""

from __future__ import annotations

import pytest
import torch

from tunesmith.recipes import ppo_math

# --------------------------------------------------------------------------- PPO loss pieces


def test_policy_loss_matches_trls_grpo_loss(tmp_path, tiny_model_dir):
    """trl's GRPO clipped surrogate with per-token advantages and token-mean aggregation ('bnpo',
    beta 0) is PPO's policy loss; run trl's own _compute_loss on the same tensors."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, beta=0.0,
                      epsilon=0.2, loss_type="bnpo", use_cpu=True, report_to="none", max_completion_length=8)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
                          train_dataset=Dataset.from_list([{"prompt": "hi"}] * 4),
                          processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.current_gradient_accumulation_steps = 1
    g = torch.Generator().manual_seed(0)
    B, T = 4, 6
    old = -torch.rand(B, T, generator=g) * 3
    new = (old + torch.randn(B, T, generator=g) * 0.4).requires_grad_()  # ratios well outside 1 +- 0.2
    adv = torch.randn(B, T, generator=g)
    mask = (torch.arange(T) < torch.tensor([[6], [3], [5], [1]])).long()
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (new, torch.zeros(B, T), None)
    inputs = {"prompt_ids": torch.zeros(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old}
    trl_loss = trainer._compute_loss(trainer.model, inputs)
    (trl_grad,) = torch.autograd.grad(trl_loss, new)
    ours, clipfrac = ppo_math.policy_loss(new, old, adv, mask, 0.2)
    (our_grad,) = torch.autograd.grad(ours, new)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6)
    assert torch.allclose(our_grad, trl_grad, atol=1e-7)
    assert 0 < clipfrac.item() < 1
    ratio = torch.exp(new - old).detach()
    assert clipfrac.item() == pytest.approx(((ratio - 1).abs() > 0.2)[mask.bool()].float().mean().item())




def test_gae_matches_the_direct_sum():
    """A_t = sum_l (gamma lambda)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t, V = 0 past the end."""
    g = torch.Generator().manual_seed(1)
    B, T, gamma, lam = 3, 7, 0.9, 0.8
    rewards, values = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    lengths = [7, 4, 1]
    mask = (torch.arange(T) < torch.tensor(lengths)[:, None]).float()
    adv, ret = ppo_math.gae(rewards, values, mask, gamma, lam)
    for b, n in enumerate(lengths):
        r, v = rewards[b, :n].tolist(), values[b, :n].tolist() + [0.0]
        delta = [r[t] + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(T):
            want = sum((gamma * lam) ** k * delta[t + k] for k in range(n - t)) if t < n else 0.0
            assert adv[b, t].item() == pytest.approx(want, abs=1e-5)
            assert ret[b, t].item() == pytest.approx(want + (v[t] if t < n else 0.0), abs=1e-5)
    # gamma = lambda = 1 with zero values: the advantage is the reward-to-go
    adv, _ = ppo_math.gae(rewards, torch.zeros(B, T), mask, 1.0, 1.0)
    assert adv[0, 2].item() == pytest.approx(rewards[0, 2:].sum().item(), abs=1e-5)


def test_masked_whiten_uses_only_real_tokens():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, generator=g) * 4 + 2
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]).float()
    x_padded = x.masked_fill(mask == 0, 1e6)  # whatever sits in the padding must not matter
    w = ppo_math.masked_whiten(x_padded, mask)
    real = x[mask.bool()]
    assert torch.allclose(w[mask.bool()], (real - real.mean()) / real.std(), atol=1e-5)  # std: unbiased
    assert (w[mask == 0] == 0).all()


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[1.0, -1.0]])
    new = torch.tensor([[0.5, 0.5]])  # moved 0.5 > clip 0.2 from the old values
    mask = torch.ones(1, 2)
    # token 0: unclipped (0.5-1)^2=.25, clipped (0.2-1)^2=.64 -> .64; token 1: (1.5)^2=2.25 vs (1.2)^2=1.44 -> 2.25
    assert ppo_math.value_loss(new, old, ret, mask, 0.2).item() == pytest.approx(0.5 * (0.64 + 2.25) / 2)
    assert ppo_math.value_loss(new, old, ret, torch.tensor([[1.0, 0.0]]), 0.2).item() == pytest.approx(0.5 * 0.64)


def test_completion_mask_keeps_tokens_through_the_first_stop():
    eos = 2  # also the pad id, as in SmolLM2
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 2], [5, 6, 7, 8, 9]])
    assert ppo_math.completion_mask(ids, [eos, 99]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
