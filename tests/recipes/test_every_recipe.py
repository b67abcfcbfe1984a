"""What every recipe shares (recipes/common.py and runs.start), pinned across the recipes.

Each recipe used to copy its setup-and-save skeleton, and the copies drifted: GRPO and DP wrote
config.yaml from every process, preference and GRPO runs recorded no parameter count and no
tokens/s, and three recipes restated their row kinds instead of reading recipes.KINDS. These tests
run each recipe for one step on a tiny model and check the shared record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunesmith
from tunesmith import runs
from tunesmith.errors import TunesmithError
from tunesmith.recipes import KINDS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = {"train.max_steps": 1, "train.logging_steps": 1, "train.precision": "fp32", "train.eval_steps": 0}

# recipe label -> (shipped config, overrides); "tiny" stands for the tiny random Llama's folder.
RECIPES = {
    "sft": ("sft-lora.yaml", {"model.name": "tiny"}),
    "classify": ("classify-minilm.yaml", {"data.validation_fraction": 0.0}),  # the real MiniLM: 22M params
    "dpo": ("dpo-lora.yaml", {"model.name": "tiny"}),
    "kto": ("kto-lora.yaml", {"model.name": "tiny"}),
    "orpo": ("orpo-lora.yaml", {"model.name": "tiny"}),  # trl collates chosen_/rejected_ ids: counted by us
    "simpo": ("simpo-lora.yaml", {"model.name": "tiny"}),
    "reward": ("reward-lora.yaml", {"model.name": "tiny"}),
    "grpo": ("grpo-lora.yaml", {"model.name": "tiny", "rl.max_new_tokens": 4, "train.batch_size": 4}),
    "dp": ("sft-dp-lora.yaml", {"model.name": "tiny", "data.validation_fraction": 0.0}),
}


def _train(label: str, tmp_path: Path, tiny_model_dir: Path, **more):
    config, overrides = RECIPES[label]
    overrides = {k: str(tiny_model_dir) if v == "tiny" else v for k, v in overrides.items()}
    return tunesmith.train(CONFIGS / config, {**FAST, **overrides, "output_dir": str(tmp_path / "runs"), **more},
                           show_progress=False)


@pytest.mark.parametrize("label", list(RECIPES))
def test_every_recipe_records_parameters_tokenizer_and_throughput(label, tmp_path, tiny_model_dir):
    run_dir = _train(label, tmp_path, tiny_model_dir)
    manifest = json.loads((run_dir / runs.MANIFEST_FILE).read_text())
    assert manifest["status"] == "completed"
    params = manifest["parameters"]
    assert 0 < params["trainable"] <= params["total"], params
    assert manifest["tokenizer"]["chat_template"] and "pad_token" in manifest["tokenizer"], manifest.get("tokenizer")
    result = manifest["result"]
    assert result["tokens_seen"] > 0 and result["tokens_per_s"] > 0 and result["train_seconds"] >= 0, result
    assert (run_dir / runs.CONFIG_FILE).is_file() and (run_dir / "data_report.json").is_file()


@pytest.mark.parametrize("label", ["sft", "grpo", "dp"])
def test_only_the_main_process_writes_the_run_directory(label, tmp_path, tiny_model_dir, monkeypatch):
    # Under `accelerate launch` every process runs the recipe; rank 0 alone writes the run directory.
    monkeypatch.setattr(runs, "is_main_process", lambda: False)
    run_dir = _train(label, tmp_path, tiny_model_dir)
    written = sorted(p.name for p in run_dir.iterdir() if p.name in (runs.CONFIG_FILE, runs.MANIFEST_FILE,
                                                                      "data_report.json"))
    assert written == [], f"a non-main process wrote {written}"


@pytest.mark.parametrize("recipe, label", [("sft", "sft"), ("classify", "classify"), ("dpo", "dpo"),
                                           ("reward", "reward"), ("grpo", "grpo"), ("sft", "dp")])
def test_every_recipe_reads_its_row_kinds_from_KINDS(recipe, label, tmp_path, tiny_model_dir, monkeypatch):
    # The accepted kinds are stated once, in recipes.KINDS: change them there and every recipe follows.
    monkeypatch.setitem(KINDS, recipe, ("kto",))
    with pytest.raises(TunesmithError, match="this recipe trains on kto rows"):
        _train(label, tmp_path, tiny_model_dir)
    assert not (tmp_path / "runs").exists(), "refused before a run directory was made"
