"""GRPO (trl) and PPO (tunesmith's loop) on the tiny model, and PPO's loss pieces checked against
trl's GRPO loss and against direct loops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tunesmith
from tunesmith.errors import TunesmithError
from tunesmith.recipes import rl
from tunesmith.runs import read_metrics

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = {"train.logging_steps": 1, "train.learning_rate": 1e-2, "train.precision": "fp32", "train.warmup_ratio": 0.0,
        "rl.max_new_tokens": 8}

SHORT_REWARD = '''
def short(prompts, completions, answer, **kwargs):
    """Fewer characters is better; `answer` is a data column, taken to show columns arrive."""
    assert len(answer) == len(completions)
    return [-float(len(c[-1]["content"])) for c in completions]

NOT_A_FUNCTION = 3

def no_kwargs(prompts, completions):
    return [0.0] * len(completions)

def needs_column(prompts, completions, difficulty, **kwargs):
    return [0.0] * len(completions)
'''


def _lora_b(adapter_dir: Path) -> list[torch.Tensor]:
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    return [w for k, w in weights.items() if "lora_B" in k]


def _loads_with_plain_peft(base_dir: Path, adapter_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0


# --------------------------------------------------------------------------- GRPO


def test_grpo_trains_lora_on_a_python_reward(tmp_path, tiny_model_dir):
    (tmp_path / "my_rewards.py").write_text(SHORT_REWARD)
    run_dir = tunesmith.train(CONFIGS / "grpo-lora.yaml", {
        **FAST, "output_dir": str(tmp_path / "runs"), "model.name": str(tiny_model_dir), "train.max_steps": 3,
        "rl.reward_functions": [str(tmp_path / "my_rewards.py") + ":short"]}, show_progress=False)

    # LoRA B matrices start at zero: non-zero entries mean GRPO's gradient reached the adapter.
    b = _lora_b(run_dir / "adapter")
    assert b and all(w.abs().sum() > 0 for w in b)
    _loads_with_plain_peft(tiny_model_dir, run_dir / "adapter")

    steps = [m for m in read_metrics(run_dir) if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2, 3]
    # The reward is minus the completion's length in characters: negative, finite, logged per function.
    assert all(m["reward"] < 0 and math.isfinite(m["reward"]) for m in steps)
    assert all(m["rewards/short/mean"] == pytest.approx(m["reward"]) for m in steps)
    assert steps[0]["kl"] == 0.0  # policy == reference while the adapter is still a no-op
    result = json.loads((run_dir / "manifest.json").read_text())["result"]
    assert result["steps"] == 3 and result["reward_first"] == steps[0]["reward"]
    assert result["reward_last"] == steps[-1]["reward"]


@pytest.mark.parametrize("spec, says", [
    ("my_rewards.py", "is not 'file.py:function'"),
    ("missing.py:short", "not found"),
    ("my_rewards.py:nope", "has no function 'nope' (functions defined there: short, no_kwargs, needs_column)"),
    ("my_rewards.py:NOT_A_FUNCTION", "is a int, not a function"),
    ("my_rewards.py:no_kwargs", "takes no **kwargs"),
    ("broken.py:f", "importing"),
    ("no_such_module_xyz:f", "cannot import module"),
])
def test_bad_reward_function_is_a_clear_error(tmp_path, tiny_model_dir, spec, says):
    (tmp_path / "my_rewards.py").write_text(SHORT_REWARD)
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "cfg.yaml").write_text((CONFIGS / "grpo-lora.yaml").read_text().replace(
        "../examples/rl/arithmetic.jsonl", str(CONFIGS.parent / "examples/rl/arithmetic.jsonl")))
    with pytest.raises(TunesmithError) as err:  # reward functions resolve against the config's folder
        tunesmith.train(tmp_path / "cfg.yaml", {"rl.reward_functions": [spec], "model.name": str(tiny_model_dir),
                                                "output_dir": str(tmp_path / "runs")}, show_progress=False)
    text = str(err.value)
    assert "rl.reward_functions[0]" in text and says in text, text
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_reward_function_needing_a_missing_column_is_refused(tmp_path, tiny_model_dir):
    (tmp_path / "my_rewards.py").write_text(SHORT_REWARD)
    with pytest.raises(TunesmithError, match="needs the column 'difficulty'.*columns: answer"):
        tunesmith.train(CONFIGS / "grpo-lora.yaml", {
            "rl.reward_functions": [str(tmp_path / "my_rewards.py") + ":needs_column"],
            "model.name": str(tiny_model_dir), "output_dir": str(tmp_path / "runs")}, show_progress=False)


def test_grpo_batch_must_hold_whole_groups(tmp_path, tiny_model_dir):
    with pytest.raises(TunesmithError, match="train.batch_size: a step's 6 x 1 = 6 completions"):
        tunesmith.train(CONFIGS / "grpo-lora.yaml", {"train.batch_size": 6, "model.name": str(tiny_model_dir),
                                                     "output_dir": str(tmp_path)}, show_progress=False)


# --------------------------------------------------------------------------- PPO


def test_ppo_against_a_reward_run(tmp_path, tiny_model_dir):
    reward_dir = tunesmith.train(CONFIGS / "reward-lora.yaml", {
        "output_dir": str(tmp_path), "model.name": str(tiny_model_dir), "train.max_steps": 2,
        "train.precision": "fp32"}, show_progress=False)
    run_dir = tunesmith.train(CONFIGS / "ppo-lora.yaml", {
        **FAST, "output_dir": str(tmp_path), "model.name": str(tiny_model_dir), "rl.reward_model": str(reward_dir),
        "train.max_steps": 3, "train.batch_size": 4}, show_progress=False)

    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r[k]) for r in rows for k in ("score", "kl", "policy_loss", "value_loss"))
    assert rows[0]["kl"] == 0.0  # the first rollout's policy is the base: LoRA B is still zero
    assert rows[-1]["kl"] != 0.0
    b = _lora_b(run_dir / "adapter")
    assert b and all(w.abs().sum() > 0 for w in b)
    _loads_with_plain_peft(tiny_model_dir, run_dir / "adapter")
    head = load_file(run_dir / "value_head.safetensors")
    assert head["weight"].shape == (1, 64) and head["weight"].abs().sum() > 0  # zero-initialised, then trained
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 3
    assert manifest["result"]["score_first"] == rows[0]["score"]
    assert manifest["reward_model"] == str(reward_dir.resolve())

    # GRPO takes the same reward run as its reward (trl scores prompt + completion with it).
    grpo_dir = tunesmith.train(CONFIGS / "grpo-lora.yaml", {
        **FAST, "output_dir": str(tmp_path), "model.name": str(tiny_model_dir), "rl.reward_functions": [],
        "rl.reward_model": str(reward_dir), "train.max_steps": 1}, show_progress=False)
    (row,) = [m for m in read_metrics(grpo_dir) if "reward" in m]
    assert math.isfinite(row["reward"]) and row["reward_std"] > 0  # the scores differ between completions


def test_ppo_reward_model_missing_or_wrong(tmp_path, tiny_model_dir):
    with pytest.raises(TunesmithError, match="rl.reward_model: reward model 'nowhere' not found.*tunesmith train"):
        tunesmith.train(CONFIGS / "ppo-lora.yaml", {"rl.reward_model": "nowhere", "output_dir": str(tmp_path),
                                                    "model.name": str(tiny_model_dir)}, show_progress=False)
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=2)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "two")
    with pytest.raises(TunesmithError, match="has 2 outputs"):
        rl.load_reward_model(tmp_path / "two")

    # A plain one-output checkpoint (no run around it) loads and scores (prompt, completion) pairs.
    from transformers import AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "one")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "one")
    model, tok = rl.load_reward_model(tmp_path / "one")
    prompt = [{"role": "user", "content": "Is shipping free?"}]
    scores = rl._score(model, tok, [prompt, prompt], ["Yes, over 40 euros.", "No"], torch.device("cpu"))
    assert scores.shape == (2,) and torch.isfinite(scores).all() and scores[0] != scores[1]


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
    ours, clipfrac = rl.policy_loss(new, old, adv, mask, 0.2)
    (our_grad,) = torch.autograd.grad(ours, new)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6)
    assert torch.allclose(our_grad, trl_grad, atol=1e-7)
    assert 0 < clipfrac.item() < 1
    ratio = torch.exp(new - old).detach()
    assert clipfrac.item() == pytest.approx(((ratio - 1).abs() > 0.2)[mask.bool()].float().mean().item())


def test_token_logprobs_are_those_of_each_unpadded_sequence(tiny_model_dir):
    """Left-padded batch log-probs (and their alignment to the completion tokens) equal a direct
    log_softmax/gather over each sequence run alone, at the sampling temperature."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    seqs = [[5, 17, 300, 42, 8, 9, 10], [77, 8, 9, 10]]  # prompts of 4 and 1 tokens, 3 completion tokens
    T, temp = 3, 0.7
    width = max(map(len, seqs))
    ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    attn = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    head = torch.nn.Linear(64, 1)
    with torch.no_grad():
        logp, values = rl.token_logprobs(model, ids, attn, T, temp, head)
        for b, s in enumerate(seqs):
            out = model(torch.tensor([s]), output_hidden_states=True)
            for t in range(T):
                pos = len(s) - T + t  # the completion token's position; its logit sits one before
                direct = torch.log_softmax(out.logits[0, pos - 1] / temp, -1)[s[pos]]
                assert logp[b, t].item() == pytest.approx(direct.item(), abs=1e-4)
                assert values[b, t].item() == pytest.approx(head(out.hidden_states[-1][0, pos - 1]).item(), abs=1e-4)


def test_gae_matches_the_direct_sum():
    """A_t = sum_l (gamma lambda)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t, V = 0 past the end."""
    g = torch.Generator().manual_seed(1)
    B, T, gamma, lam = 3, 7, 0.9, 0.8
    rewards, values = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    lengths = [7, 4, 1]
    mask = (torch.arange(T) < torch.tensor(lengths)[:, None]).float()
    adv, ret = rl.gae(rewards, values, mask, gamma, lam)
    for b, n in enumerate(lengths):
        r, v = rewards[b, :n].tolist(), values[b, :n].tolist() + [0.0]
        delta = [r[t] + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(T):
            want = sum((gamma * lam) ** k * delta[t + k] for k in range(n - t)) if t < n else 0.0
            assert adv[b, t].item() == pytest.approx(want, abs=1e-5)
            assert ret[b, t].item() == pytest.approx(want + (v[t] if t < n else 0.0), abs=1e-5)
    # gamma = lambda = 1 with zero values: the advantage is the reward-to-go
    adv, _ = rl.gae(rewards, torch.zeros(B, T), mask, 1.0, 1.0)
    assert adv[0, 2].item() == pytest.approx(rewards[0, 2:].sum().item(), abs=1e-5)


def test_masked_whiten_uses_only_real_tokens():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, generator=g) * 4 + 2
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]).float()
    x_padded = x.masked_fill(mask == 0, 1e6)  # whatever sits in the padding must not matter
    w = rl.masked_whiten(x_padded, mask)
    real = x[mask.bool()]
    assert torch.allclose(w[mask.bool()], (real - real.mean()) / real.std(), atol=1e-5)  # std: unbiased
    assert (w[mask == 0] == 0).all()


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[1.0, -1.0]])
    new = torch.tensor([[0.5, 0.5]])  # moved 0.5 > clip 0.2 from the old values
    mask = torch.ones(1, 2)
    # token 0: unclipped (0.5-1)^2=.25, clipped (0.2-1)^2=.64 -> .64; token 1: (1.5)^2=2.25 vs (1.2)^2=1.44 -> 2.25
    assert rl.value_loss(new, old, ret, mask, 0.2).item() == pytest.approx(0.5 * (0.64 + 2.25) / 2)
    assert rl.value_loss(new, old, ret, torch.tensor([[1.0, 0.0]]), 0.2).item() == pytest.approx(0.5 * 0.64)


def test_completion_mask_keeps_tokens_through_the_first_stop():
    eos = 2  # also the pad id, as in SmolLM2
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 2], [5, 6, 7, 8, 9]])
    assert rl.completion_mask(ids, [eos, 99]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
