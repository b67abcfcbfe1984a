"""model.rope_scaling: a RoPE model trains on rows longer than its positions once they are stretched,
the run reloads with the same scaling, and without it data.max_length past the positions is refused."""

from __future__ import annotations

import json

import pytest

import tunesmith
from tunesmith.errors import TunesmithError


@pytest.fixture(scope="module")
def short_model(make_tiny_llama):
    """A random 2-layer Llama with only 64 positions."""
    return make_tiny_llama("short-llama", max_positions=64)


def _config(tmp_path, model, **model_keys):
    words = " ".join(f"word{i}" for i in range(25))  # ~180 tokens with the chat template: past 64
    (tmp_path / "long.jsonl").write_text("".join(json.dumps({"instruction": f"Repeat {k}: {words}",
                                                             "output": words}) + "\n" for k in range(8)))
    return {"name": "long", "output_dir": str(tmp_path / "runs"), "model": {"name": str(model), **model_keys},
            "data": {"train": [str(tmp_path / "long.jsonl")], "max_length": 240},
            "train": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-2, "precision": "fp32", "epochs": 1,
                      "eval_steps": 0, "early_stopping_patience": 0},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "energy": {"enabled": False}}


def test_max_length_past_the_positions_is_refused(tmp_path, short_model):
    with pytest.raises(TunesmithError, match="beyond the 64 positions") as info:
        tunesmith.train(_config(tmp_path, short_model), show_progress=False)
    assert "rope_factor >= 4" in str(info.value)


@pytest.mark.parametrize("kind", ["linear", "dynamic", "yarn"])
def test_scaled_rope_trains_past_the_original_length_and_reloads(tmp_path, short_model, kind):
    run_dir = tunesmith.train(_config(tmp_path, short_model, rope_scaling=kind, rope_factor=4.0), show_progress=False)
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["train"]["length_min"] > 64 and report["train"]["truncated"] == 0  # every row past the old length
    losses = [r["loss"] for r in tunesmith.runs.read_metrics(run_dir) if "loss" in r]
    assert losses and all(loss == loss and loss < 20 for loss in losses)
    loaded = tunesmith.load(str(run_dir))
    text = loaded.model.config.get_text_config(decoder=True)
    assert text.max_position_embeddings == 256
    assert text.rope_parameters["rope_type"] == kind and text.rope_parameters["factor"] == 4.0
    assert text.rope_parameters["original_max_position_embeddings"] == 64
