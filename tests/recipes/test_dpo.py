"""DPO through trl on the tiny model: known first-step loss, margins that grow, a plain-peft adapter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import tunesmith
from tunesmith.runs import read_metrics

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "dpo-lora.yaml"


def test_dpo_lora_on_the_shipped_pairs(tmp_path, tiny_model_dir):
    run_dir = tunesmith.train(CONFIG, {"output_dir": str(tmp_path), "model.name": str(tiny_model_dir),
                                       "train.max_steps": 6, "train.logging_steps": 1, "train.learning_rate": 1e-2,
                                       "train.precision": "fp32"}, show_progress=False)
    steps = [m for m in read_metrics(run_dir) if "loss" in m]
    # Policy == reference at step 1 (the adapter starts as a no-op): the sigmoid DPO loss is ln 2.
    assert steps[0]["loss"] == __import__("pytest").approx(math.log(2), abs=1e-6)
    assert steps[-1]["rewards/margins"] > 0 and steps[-1]["loss"] < math.log(2)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 6

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")


def test_dpo_loss_variants_run(tmp_path, tiny_model_dir):
    for loss in ("ipo", "hinge", "robust"):
        run_dir = tunesmith.train(CONFIG, {"output_dir": str(tmp_path), "name": f"dpo-{loss}",
                                           "model.name": str(tiny_model_dir), "train.max_steps": 1,
                                           "train.precision": "fp32", "preference.loss": loss,
                                           "preference.label_smoothing": 0.1 if loss == "robust" else 0.0},
                                  show_progress=False)
        assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed", loss


def test_kto_lora_on_the_shipped_rows(tmp_path, tiny_model_dir):
    config = CONFIG.with_name("kto-lora.yaml")
    run_dir = tunesmith.train(config, {"output_dir": str(tmp_path), "model.name": str(tiny_model_dir),
                                       "train.max_steps": 4, "train.logging_steps": 1, "train.learning_rate": 1e-2,
                                       "train.precision": "fp32"}, show_progress=False)
    steps = [m for m in read_metrics(run_dir) if "loss" in m]
    assert len(steps) == 4 and all(math.isfinite(m["loss"]) for m in steps)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()


def test_reward_model_on_the_shipped_pairs(tmp_path, tiny_model_dir):
    config = CONFIG.with_name("reward-lora.yaml")
    run_dir = tunesmith.train(config, {"output_dir": str(tmp_path), "model.name": str(tiny_model_dir),
                                       "train.max_steps": 8, "train.logging_steps": 1, "train.learning_rate": 1e-2,
                                       "train.precision": "fp32"}, show_progress=False)
    steps = [m for m in read_metrics(run_dir) if "loss" in m]
    # A fresh score head gives near-equal rewards: the pairwise loss starts near ln 2 and falls.
    assert abs(steps[0]["loss"] - math.log(2)) < 0.1 and steps[-1]["loss"] < steps[0]["loss"]
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    PeftModel.from_pretrained(base, run_dir / "adapter")


def test_reference_free_objectives_orpo_and_simpo(tmp_path, tiny_model_dir):
    """ORPO and SimPO (trl.experimental) train LoRA on the shipped pairs: the chosen-minus-rejected
    margin grows on repeated data, and the adapter loads with plain peft."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    for recipe in ("orpo", "simpo"):
        run_dir = tunesmith.train(CONFIG.with_name(f"{recipe}-lora.yaml"),
                                  {"output_dir": str(tmp_path), "model.name": str(tiny_model_dir),
                                   "train.max_steps": 8, "train.logging_steps": 1, "train.learning_rate": 1e-2,
                                   "train.warmup_ratio": 0.0, "train.precision": "fp32"}, show_progress=False)
        steps = [m for m in read_metrics(run_dir) if "loss" in m]
        assert len(steps) == 8 and all(math.isfinite(m["loss"]) for m in steps), recipe
        assert steps[-1]["rewards/margins"] > steps[0]["rewards/margins"], (recipe, steps[0], steps[-1])
        b = [w for k, w in load_file(run_dir / "adapter" / "adapter_model.safetensors").items() if "lora_B" in k]
        assert b and all(w.abs().sum() > 0 for w in b), recipe
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")
