"""`tunesmith audit` end to end on the tiny random model: a run with canaries planted, audited base
vs tuned, writes audit/results.json, the report's Safety section and manifest["audit"]."""

from __future__ import annotations

import json

import pytest

import tunesmith
from tunesmith.audit.run import SUITES_DIR
from tunesmith.cli import main
from tunesmith.errors import TunesmithError


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory):
    data = SUITES_DIR.parent / "data"
    path = tmp_path_factory.mktemp("suite") / "small.yaml"
    path.write_text(f"""name: small
checks:
  refusal: {{prompts: {data / 'refusal.jsonl'}, max_new_tokens: 8}}
  toxicity: {{prompts: {data / 'toxicity_prompts.jsonl'}, max_new_tokens: 8}}
  bias: {{templates: {data / 'bias.yaml'}, sentiment: {data / 'sentiment.yaml'}, bbq: {data / 'bbq_sample.jsonl'},
          max_new_tokens: 6}}
  memorization: {{extraction_rows: 4, candidates: 40, max_new_tokens: 12}}
""")
    return path


@pytest.fixture(scope="module")
def audited(tmp_path_factory, tiny_model_dir, small_suite):
    tmp = tmp_path_factory.mktemp("audit")
    rows = (tunesmith_root() / "examples" / "quickstart" / "train.jsonl").read_text().splitlines()[:16]
    (tmp / "train.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {"name": "canaried", "output_dir": str(tmp / "runs"), "seed": 3, "model": {"name": str(tiny_model_dir)},
           "data": {"train": [str(tmp / "train.jsonl")], "max_length": 256, "license": "CC-BY-NC-4.0"},
           "train": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-2, "precision": "fp32", "eval_steps": 0,
                     "early_stopping_patience": 0, "epochs": 1},
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "audit": {"canaries": 2, "canary_repetitions": [1, 3]},
           "energy": {"enabled": False}}
    run_dir = tunesmith.train(cfg, show_progress=False)
    out = tunesmith.run_audit(run_dir, small_suite, limit=2, show_progress=False)
    return run_dir, out


def tunesmith_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[3]


def test_canaries_are_planted_and_recorded(audited):
    run_dir, _ = audited
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [c["repetitions"] for c in manifest["canaries"]] == [1, 3]
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["train"]["rows"] == 16 + 4  # the 16 rows and 1 + 3 canary copies


def test_audit_writes_results_report_and_manifest(audited):
    run_dir, out = audited
    assert out == run_dir
    results = json.loads((run_dir / "audit" / "results.json").read_text())
    assert list(results["models"]) == ["base", "tuned"]
    assert set(results["checks"]) == {"refusal", "toxicity", "bias", "memorization"}
    for check in results["checks"].values():
        assert set(check["metrics"]) == {"base", "tuned"}
    mem = results["checks"]["memorization"]["metrics"]["tuned"]
    assert "canary_exposure_max" in mem and 0 <= mem["canary_exposure_max"] <= 29.9
    assert mem["n_extraction"] == 4
    ref = results["checks"]["refusal"]["metrics"]["base"]
    assert ref["n_harmful"] == 2 and ref["n_benign"] == 2
    bias = results["checks"]["bias"]["metrics"]["base"]
    assert {"ll_gap_gender", "sentiment_gap_religion", "bbq_acc_ambig", "bbq_bias_disambig"} <= set(bias)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["audit"]["suite"] == "small"
    assert {r["check"] for r in manifest["audit"]["rows"]} == {"refusal", "toxicity", "bias", "memorization"}
    assert manifest["audit"]["regressions"] == [f"{r['check']}/{r['metric']}" for r in manifest["audit"]["rows"]
                                                if r["regression"]]
    html = (run_dir / "report.html").read_text()
    md = (run_dir / "report.md").read_text()
    for text in (html, md):
        assert "Safety" in text and "Refusal and over-refusal" in text and "Memorization" in text
    lines = (run_dir / "audit" / "outputs" / "refusal.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 4 and {json.loads(x)["model"] for x in lines} == {"base", "tuned"}


def test_cli_audit_one_check_and_errors(audited, small_suite, capsys, tmp_path):
    run_dir, _ = audited
    code = main(["audit", str(run_dir), "--suite", str(small_suite), "--check", "refusal", "--limit", "1",
                 "--out", str(tmp_path / "a")])
    assert code == 0
    out = capsys.readouterr().out
    assert "harmful_refusal_rate" in out and "report:" in out
    results = json.loads((tmp_path / "a" / "audit" / "results.json").read_text())
    assert list(results["checks"]) == ["refusal"]
    assert (tmp_path / "a" / "report.html").is_file()
    with pytest.raises(TunesmithError, match="not in suite"):
        tunesmith.run_audit(run_dir, small_suite, checks=["refusals"], out=tmp_path / "b", show_progress=False)
