"""tunesmith.estimate: the extrapolation maths on inputs with known answers, the memory verdict, and
`validate --estimate` end to end on the tiny model (a real probe in a child process)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tunesmith import estimate as est
from tunesmith.api import validate
from tunesmith.cli import main
from tunesmith.config import load_config


def test_steps_follow_the_trainers_count():
    # 100 rows / batch 8 = 13 batches; accumulation 2: 6 full updates + 1 partial = 7 per epoch
    assert est.steps_for(100, 8, 2, 3.0, -1) == 21
    assert est.steps_for(100, 8, 2, 0.5, -1) == 4  # ceil(0.5 x 7)
    assert est.steps_for(100, 8, 1, 1.0, -1) == 13
    assert est.steps_for(3, 8, 4, 1.0, -1) == 1  # never zero
    assert est.steps_for(100, 8, 2, 3.0, 5) == 5  # max_steps wins


def test_expected_batch_width_is_the_mean_longest_row():
    # pairs of [1, 2, 3, 4]: longest 2, 3, 4, 3, 4, 4 -> 20 / 6
    assert est.expected_batch_width([4, 1, 3, 2], 2) == pytest.approx(20 / 6)
    assert est.expected_batch_width([1, 2, 3, 4], 1) == pytest.approx(2.5)
    assert est.expected_batch_width([1, 2, 3, 4], 4) == pytest.approx(4)
    assert est.expected_batch_width([1, 2, 3, 4], 9) == pytest.approx(4)  # a batch larger than the data
    assert est.expected_batch_width([256] * 5000, 16) == pytest.approx(256)  # packed rows; no overflow
    assert est.expected_batch_width([], 4) == 0


def test_tokens_per_step_counts_padding_accumulation_and_pairs():
    assert est.tokens_per_step([10, 10], 2, 3) == {"padded": 60, "real": 60}
    t = est.tokens_per_step([1, 2, 3, 4], 2, 1)
    assert t["padded"] == pytest.approx(2 * 20 / 6) and t["real"] == pytest.approx(5)
    assert est.tokens_per_step([10, 10], 2, 1, sequences_per_row=2)["padded"] == 40  # DPO: chosen + rejected


def test_eval_passes_and_checkpoint_saves():
    assert est.eval_passes(40, 20, True) == 2
    assert est.eval_passes(45, 20, True) == 3  # the Trainer evaluates the last step too
    assert est.eval_passes(45, 0, True) == 1  # the recipe's final evaluation
    assert est.eval_passes(45, 20, False) == 0
    assert est.checkpoint_saves(40, 20) == 2 and est.checkpoint_saves(45, 20) == 3


def test_extrapolate_adds_the_phases_and_scales_steps_by_tokens():
    probe = {"startup_s": 10.0, "warmup_step_s": 2.0, "step_s": [1.0, 1.0], "step_tokens": [100, 100],
             "eval_pass_s": 3.0, "save_s": 0.5, "finish_s": 1.0}
    plan = {"steps": 11, "tokens_per_step": 200.0, "eval_passes": 2, "saves": 3}
    out = est.extrapolate(probe, plan)
    # steps: warm-up 2 + 10 x (1 s x 200/100 tokens); 10 + 22 + 2 x 3 + 3 x 0.5 + 1
    assert out["seconds_per_step"] == 2.0 and out["parts"]["steps"] == 22.0
    assert out["seconds"] == pytest.approx(40.5)
    assert est.extrapolate(probe, {**plan, "tokens_per_step": 0})["seconds_per_step"] == 1.0  # nothing to scale by


def test_peak_memory_scales_activations_to_the_longest_batch():
    memory = {"peak": 1.6e9, "base": 1.0e9, "train_peak": 1.5e9}
    assert est.predict_peak(memory, 4000, 1000)["bytes"] == 3_000_000_000  # 1 GB + 0.5 GB x 4
    assert est.predict_peak(memory, 500, 1000)["bytes"] == 1_600_000_000  # never below what the probe used


def test_the_fit_verdict_names_the_numbers_and_the_fix():
    no = est.fit_verdict(3e9, 2e9)
    assert no["fits"] is False and "will not fit: needs ~3.0 GB, 2.0 GB available" in no["message"]
    assert "train.batch_size" in no["message"] and "data.max_length" in no["message"]
    assert est.fit_verdict(1.95e9, 2e9)["fits"] is True and "tight" in est.fit_verdict(1.95e9, 2e9)["message"]
    assert est.fit_verdict(1e9, 2e9) == {"fits": True, "message": "fits"}
    assert est.fit_verdict(1e9, None)["fits"] is None


def test_available_memory_reads_this_machine():
    found = est.available_memory()
    assert found["source"] in ("meminfo", "cgroup") and found["bytes"] > 0


def test_unsupported_recipes_get_no_guess(tiny_config):
    out = est.estimate(load_config({**tiny_config, "recipe": "kto"}))
    assert out == {"supported": False, "message": "no estimate for recipe kto yet (supported: sft, cpt, dpo)"}
    assert est.summary_lines(out) == ["estimate: no estimate for recipe kto yet (supported: sft, cpt, dpo)"]


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """tempfile's folder pointed at an empty one, to see that the probe leaves nothing behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_validate_estimate_end_to_end_leaves_nothing_behind(tiny_config, own_tmp):
    plain = validate(tiny_config, kinds=("chat",))
    assert "estimate" not in plain  # without the option, nothing trains
    report = validate(tiny_config, kinds=("chat",), estimate=True)
    e = report["estimate"]
    assert e["supported"] and e["seconds"] > 0 and e["peak_memory_bytes"] > 0 and e["seconds_per_step"] > 0
    assert e["steps"] == 4 and e["measured_steps"] == 3 and e["train_rows"] == 18  # 24 rows, 25% held out
    assert e["eval_passes"] == 2 and e["checkpoint_saves"] == 2  # eval_steps 2 and save_steps 2 of 4 steps
    assert e["tokens_per_step"]["padded"] >= e["tokens_per_step"]["real"] > 0
    assert e["fits"] is True and e["available_memory_bytes"] > e["peak_memory_bytes"]
    assert not Path(tiny_config["output_dir"]).exists()  # the run's own folder was never made
    assert list(own_tmp.iterdir()) == []  # nor is the probe's


def test_cli_prints_the_estimate_and_the_will_not_fit_warning(tiny_config, tmp_path, monkeypatch, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(tiny_config))  # JSON is YAML
    # plumbing: this machine's free memory, faked small so that the run cannot fit
    monkeypatch.setattr(est, "available_memory", lambda: {"bytes": 100_000_000, "source": "meminfo"})
    assert main(["validate", str(config), "train.max_steps=3", "--estimate"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("estimate: "))
    assert "wall (3 steps at ~" in line and "measured over 2 steps), peak memory ~" in line
    assert "of 0.1 GB available" in line
    assert "warning: will not fit: needs ~" in out and "0.1 GB available; lower train.batch_size" in out
    assert main(["validate", str(config), "--json"]) == 0
    assert "estimate" not in json.loads(capsys.readouterr().out)
