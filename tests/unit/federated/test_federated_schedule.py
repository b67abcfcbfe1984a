"""One learning-rate schedule over all rounds (tunesmith/federated/local.py::learning_rates)."""

from __future__ import annotations

import pytest

import tunesmith
from tunesmith.federated.local import learning_rates


def cfg(scheduler: str):
    return tunesmith.load_config({"data": {"train": ["a.jsonl"]}, "train": {"learning_rate": 1e-3, "warmup_ratio": 0.0,
                                                                            "lr_scheduler": scheduler},
                                  "federated": {"enabled": True, "rounds": 3, "local_steps": 4}})


def test_rounds_continue_one_schedule_over_rounds_times_local_steps():
    c = cfg("linear")
    steps = [lr for r in (1, 2, 3) for lr in learning_rates(c, r)]
    assert len(steps) == 12
    assert steps[0] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(steps, steps[1:]))  # round 2 starts below where round 1 ended
    assert steps[-1] == pytest.approx(1e-3 / 12)


def test_constant_schedule_is_flat():
    assert set(learning_rates(cfg("constant"), 2)) == {1e-3}
