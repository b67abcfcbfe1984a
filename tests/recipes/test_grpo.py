"""GRPO through trl on the tiny model: a Python reward trains the adapter; bad reward functions are
clear errors before any run directory exists."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from adapter_checks import loads_with_plain_peft, lora_b  # tests/recipes/adapter_checks.py

import tunesmith
from tunesmith.errors import TunesmithError
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


def test_grpo_trains_lora_on_a_python_reward(tmp_path, tiny_model_dir):
    (tmp_path / "my_rewards.py").write_text(SHORT_REWARD)
    run_dir = tunesmith.train(CONFIGS / "grpo-lora.yaml", {
        **FAST, "output_dir": str(tmp_path / "runs"), "model.name": str(tiny_model_dir), "train.max_steps": 3,
        "rl.reward_functions": [str(tmp_path / "my_rewards.py") + ":short"]}, show_progress=False)

    # LoRA B matrices start at zero: non-zero entries mean GRPO's gradient reached the adapter.
    b = lora_b(run_dir / "adapter")
    assert b and all(w.abs().sum() > 0 for w in b)
    loads_with_plain_peft(tiny_model_dir, run_dir / "adapter")

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


