"""Reward functions for configs/grpo-lora.yaml (rl.reward_functions: ['../examples/rl/rewards.py:correct']).

A reward function takes (prompts, completions, **columns) and returns one float per completion
(trl's GRPOTrainer convention). tunesmith always sends chat prompts, so each completion is a message
list, [{"role": "assistant", "content": "..."}]; the row's other columns (here `answer`) arrive as
lists aligned with the completions. Unused keyword arguments (trl also passes completion_ids and
trainer_state) are swallowed by **kwargs.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"-?\d+")


def _text(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else completion


def correct(prompts, completions, answer, **kwargs) -> list[float]:
    """1.0 when the last number in the reply is the row's answer ('9 + 11 = 20' counts), else 0.0."""
    out = []
    for completion, expected in zip(completions, answer):
        numbers = _NUMBER.findall(_text(completion))
        out.append(1.0 if numbers and numbers[-1] == str(expected).strip() else 0.0)
    return out


def number_only(prompts, completions, **kwargs) -> list[float]:
    """Format: 0.5 for a reply that is just a number (what the prompts ask for), less the longer it runs."""
    out = []
    for completion in completions:
        text = _text(completion).strip()
        out.append(0.5 if re.fullmatch(r"-?\d+\.?", text) else -min(len(text), 200) / 400)
    return out
