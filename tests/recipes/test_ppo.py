"""PPO (tunesmith's loop) on the tiny model against a reward run, and the reward model loading and
scoring it uses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from adapter_checks import loads_with_plain_peft, lora_b  # tests/recipes/adapter_checks.py
from safetensors.torch import load_file

import tunesmith
from tunesmith.errors import TunesmithError
from tunesmith.recipes import ppo, rewards
from tunesmith.runs import read_metrics

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = {"train.logging_steps": 1, "train.learning_rate": 1e-2, "train.precision": "fp32", "train.warmup_ratio": 0.0,
        "rl.max_new_tokens": 8}

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
    b = lora_b(run_dir / "adapter")
    assert b and all(w.abs().sum() > 0 for w in b)
    loads_with_plain_peft(tiny_model_dir, run_dir / "adapter")
    head = load_file(run_dir / "value_head.safetensors")
    assert head["weight"].shape == (1, 64) and head["weight"].abs().sum() > 0  # zero-initialised, then trained
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 3
    assert manifest["result"]["score_first"] == rows[0]["score"]
    assert manifest["reward_model"] == str(reward_dir.resolve())
    # Recorded as every recipe records them (runs.start, recipes/common.py).
    assert 0 < manifest["parameters"]["trainable"] < manifest["parameters"]["total"]
    assert manifest["result"]["tokens_seen"] > 0 and manifest["result"]["tokens_per_s"] > 0
    assert manifest["tokenizer"]["pad_token"] and (run_dir / "data_report.json").is_file()

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
        rewards.load_reward_model(tmp_path / "two")

    # A plain one-output checkpoint (no run around it) loads and scores (prompt, completion) pairs.
    from transformers import AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "one")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "one")
    model, tok = rewards.load_reward_model(tmp_path / "one")
    prompt = [{"role": "user", "content": "Is shipping free?"}]
    scores = rewards.score(model, tok, [prompt, prompt], ["Yes, over 40 euros.", "No"], torch.device("cpu"))
    assert scores.shape == (2,) and torch.isfinite(scores).all() and scores[0] != scores[1]




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
        logp, values = ppo.token_logprobs(model, ids, attn, T, temp, head)
        for b, s in enumerate(seqs):
            out = model(torch.tensor([s]), output_hidden_states=True)
            for t in range(T):
                pos = len(s) - T + t  # the completion token's position; its logit sits one before
                direct = torch.log_softmax(out.logits[0, pos - 1] / temp, -1)[s[pos]]
                assert logp[b, t].item() == pytest.approx(direct.item(), abs=1e-4)
                assert values[b, t].item() == pytest.approx(head(out.hidden_states[-1][0, pos - 1]).item(), abs=1e-4)
