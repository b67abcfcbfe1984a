"""Invariant: batch 1 x 8 accumulation steps == batch 8 x 1 step (loss and gradient norm), padded and packed.

A wrong normalisation (averaging per micro-batch, then over micro-batches) weights short rows'
tokens more than long rows' tokens; rows of very different lengths make that visible.
"""

from __future__ import annotations

import pytest

import tunesmith
from tunesmith.runs import read_metrics


@pytest.fixture
def uneven_data(write_jsonl):
    rows = []
    for i in range(8):
        words = " ".join(["word"] * (3 + 25 * (i % 4)))  # replies of 3 to 78 words
        rows.append({"instruction": f"Question {i}: say something.", "output": f"Answer {i}: {words}"})
    return write_jsonl("uneven.jsonl", rows)


def _first_step(tiny_model_dir, data, tmp_path, name, batch, accum, packing):
    cfg = {"name": name, "output_dir": str(tmp_path / "runs"), "seed": 3,
           "model": {"name": str(tiny_model_dir), "attention": "eager"},
           "data": {"train": [str(data)], "max_length": 256, "packing": packing, "cache": False},
           "train": {"method": "full", "max_steps": 1, "batch_size": batch, "grad_accum": accum, "precision": "fp32",
                     "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 10, "warmup_ratio": 0.0,
                     "max_grad_norm": 1e6}}
    run_dir = tunesmith.train(cfg, show_progress=False)
    return next(m for m in read_metrics(run_dir) if "loss" in m)


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_batch_8_equals_batch_1_times_8_accumulation(tiny_model_dir, uneven_data, tmp_path, packing):
    if packing:  # 8 rows packed into 256-token sequences: compare 1 pack-batch of all packs vs 1 x n
        one = _first_step(tiny_model_dir, uneven_data, tmp_path, "one", 8, 1, True)
        many = _first_step(tiny_model_dir, uneven_data, tmp_path, "many", 1, 8, True)
    else:
        one = _first_step(tiny_model_dir, uneven_data, tmp_path, "one", 8, 1, False)
        many = _first_step(tiny_model_dir, uneven_data, tmp_path, "many", 1, 8, False)
    assert many["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert many["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)


def test_packed_step_equals_padded_step(tiny_model_dir, uneven_data, tmp_path):
    """Packing changes the layout, not the maths: one step over all 8 rows, packed (restarting positions,
    no attention across rows) or padded, gives the same loss and gradient norm (fp32, within 1e-4)."""
    padded = _first_step(tiny_model_dir, uneven_data, tmp_path, "padded", 8, 1, False)
    packed = _first_step(tiny_model_dir, uneven_data, tmp_path, "packed", 8, 1, True)
    assert packed["loss"] == pytest.approx(padded["loss"], rel=1e-4)
    assert packed["grad_norm"] == pytest.approx(padded["grad_norm"], rel=1e-4)
