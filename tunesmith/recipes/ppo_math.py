"""PPO's maths, apart from the loop: generalised advantage estimation, masked whitening, the
clipped policy and value losses, and the completion mask. Each is a small function over tensors,
checked against direct loops and against trl's GRPO loss in tests/unit/recipes/test_ppo_math.py.
"""

from __future__ import annotations

# Constants (not config): gamma = 1 because the only delayed reward is the score at the end of a
# short completion, so discounting would just shrink it; lambda = 0.95 and the value-loss settings
# are the defaults of trl's former PPOConfig (lam, cliprange_value, vf_coef).
GAE_GAMMA = 1.0
GAE_LAMBDA = 0.95
VALUE_CLIP = 0.2
VALUE_COEF = 0.1


def masked_mean(x, mask):
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x, mask, eps: float = 1e-8):
    """Zero mean, unit variance over the masked entries (unbiased variance); masked-out entries 0."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1).clamp(min=1)  # Bessel's correction
    return (x - mean) * (var + eps).rsqrt() * mask


def gae(rewards, values, mask, gamma: float = GAE_GAMMA, lam: float = GAE_LAMBDA):
    """Generalised advantage estimation over completion tokens: (advantages, returns).

    values[:, t] is V of the state before token t; past the end of a completion (mask 0) rewards
    and values count as 0, so the last real token bootstraps from nothing.
    """
    import torch

    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, advantages + values


def policy_loss(logp, old_logp, advantages, mask, clip: float):
    """PPO's clipped surrogate, averaged over completion tokens: (loss, fraction of clipped ratios).
    Per token it is trl GRPO's -min(r A, clip(r, 1-eps, 1+eps) A) with token advantages."""
    import torch

    ratio = torch.exp(logp - old_logp)
    per_token = -torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages)
    return masked_mean(per_token, mask), masked_mean(((ratio - 1).abs() > clip).float(), mask)


def value_loss(values, old_values, returns, mask, clip: float = VALUE_CLIP):
    """Clipped value loss: the worse of the new value and one kept within `clip` of the old."""
    import torch

    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


def completion_mask(completion_ids, stop_ids):
    """1 for each sampled token up to and including the first stop token (pad == eos is common,
    so padding cannot be told from a real end by id)."""
    import torch

    is_stop = torch.isin(completion_ids, torch.as_tensor(stop_ids, device=completion_ids.device)).long()
    return ((is_stop.cumsum(1) - is_stop) == 0).long()
