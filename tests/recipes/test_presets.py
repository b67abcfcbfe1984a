"""Every shipped preset validates and trains two steps as shipped (its real embedded model, its own
settings), with only the data, the step count and the output folder given; and a preset is exactly
a config fragment under the config's own settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import tunesmith
from tunesmith import presets
from tunesmith.config import load_config
from tunesmith.errors import TunesmithError
from tunesmith.runs import read_manifest

ROOT = Path(__file__).resolve().parents[2]
DATA = {"classify-small": "examples/classify/sentiment.jsonl", "sft-format": "examples/quickstart/train.jsonl",
        "cpt-domain": "examples/cpt/corpus.txt", "dpo-small": "examples/preference/support_pairs.jsonl"}


def test_every_preset_has_data_here_a_description_and_its_sweep():
    assert sorted(DATA) == presets.names()
    for name in presets.names():
        p = presets.read(name)
        assert p["description"].strip() and "\n" not in p["description"]
        sweep = ROOT / "bench" / "sweeps" / f"{name}.yaml"
        assert sweep.is_file() and f"bench/sweeps/{name}.yaml" in p["chosen_by"]


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(DATA))
def test_preset_validates_and_trains_two_steps(name, tmp_path, capsys):
    from tunesmith.cli import main

    cfg = {"preset": name, "name": name, "output_dir": str(tmp_path / "runs"),
           "data": {"train": str(ROOT / DATA[name])}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(path)]) == 0
    assert "config ok" in capsys.readouterr().out
    run_dir = tunesmith.train(path, {"train.max_steps": 2, "train.logging_steps": 1}, show_progress=False)
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 2
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    shipped = presets.read(name)
    assert written["preset"] == name and written["recipe"] == shipped["recipe"]
    for key, value in shipped["train"].items():  # the preset's settings are the run's
        assert written["train"][key] == pytest.approx(value) if isinstance(value, float) else value


def test_the_config_wins_over_its_preset():
    cfg = load_config({"preset": "sft-format", "data": {"train": "/abs/t.jsonl"}, "train": {"learning_rate": 1e-4},
                       "lora": {"r": 4}})
    assert cfg.train.learning_rate == 1e-4 and cfg.lora.r == 4  # the config's
    shipped = presets.read("sft-format")
    assert cfg.train.epochs == shipped["train"]["epochs"] and cfg.lora.alpha == shipped["lora"]["alpha"]  # preset's
    assert cfg.recipe == "sft" and cfg.model.name == "smollm2-135m-instruct"


def test_an_unknown_preset_names_the_close_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: /abs/t.jsonl\npreset: dpo-smal\n")
    with pytest.raises(TunesmithError) as e:
        load_config(path)
    p = e.value.problems[0]
    assert p.field == "preset" and p.line == 3 and "did you mean 'dpo-small'" in p.fix


def test_a_validation_file_replaces_the_presets_split():
    cfg = load_config({"preset": "dpo-small", "data": {"train": "/abs/t.jsonl", "validation": "/abs/v.jsonl"}})
    assert cfg.data.validation == "/abs/v.jsonl" and cfg.data.validation_fraction == 0.0
    assert load_config({"preset": "dpo-small", "data": {"train": "/abs/t.jsonl"}}).data.validation_fraction == 0.1
