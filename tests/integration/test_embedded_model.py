"""The real embedded SmolLM2: a few LoRA steps end to end, then generation from the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunesmith

pytestmark = pytest.mark.integration
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_base_model_generates_coherently(smollm2_dir):
    reply = tunesmith.generate("smollm2-135m-instruct", "What is the capital of France?", max_new_tokens=16)[0]
    assert "Paris" in reply


def test_lora_steps_on_the_real_model_then_generate(tmp_path, smollm2_dir):
    from tunesmith.runs import read_metrics

    cfg = tunesmith.load_config(QUICKSTART / "config.yaml", {
        "output_dir": str(tmp_path / "runs"), "train.max_steps": 6, "train.batch_size": 4,
        "train.eval_steps": 0, "data.validation_fraction": 0.0, "train.logging_steps": 1,
        "train.learning_rate": 1e-3})
    run_dir = tunesmith.train(cfg, show_progress=False)
    losses = [m["loss"] for m in read_metrics(run_dir) if "loss" in m]
    assert len(losses) == 6 and losses[-1] < losses[0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["kind"] == "embedded" and manifest["status"] == "completed"

    prompt = "Turn this into a contact record.\n\nMeet Zofia Horvat, a 41-year-old chef based in Oslo."
    reply = tunesmith.generate(run_dir, prompt, max_new_tokens=40)[0]
    assert reply.strip(), "the tuned model produced no text"
