"""The eval gate's arithmetic: primary metrics, drops in each metric's direction against the
tolerance, the failure message and the side-by-side report, on hand-made results."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.merge import gate
from tunesmith.merge.config import load_merge_config
from tunesmith.merge.parents import Parent


def _results(parent: dict, merged: dict) -> dict:
    """One suite's side-by-side results: a generation task and a perplexity task."""
    return {"suite": "skills", "tasks": [
        {"name": "records", "metrics": {"a": parent["records"], "merged": merged["records"]}},
        {"name": "loss", "metrics": {"a": parent["loss"], "merged": merged["loss"]}}],
        "task_specs": [{"name": "records", "metrics": ["json_match", "chrf"]}, {"name": "loss", "metrics": []}],
        "models": {"a": "run a", "merged": "merge"}}


def _cfg(**parent):
    return load_merge_config({"parents": [{"path": "a", "eval_suite": "s.yaml", **parent}, {"path": "b"}]})


PARENT = Parent(0, Path("a"), "a", Path("a"))


def test_primary_metric_is_the_first_listed_one_it_reports_else_the_first_reported():
    task = {"metrics": {"a": {"json_valid": 1.0, "json_match": 0.5, "chrf": 40.0}}}
    assert gate.primary_metrics(task, {"metrics": ["json_match", "chrf"]}, "a") == ["json_match"]
    task = {"metrics": {"a": {"acc": 0.5, "acc_norm": 0.6, "confusion": [[1]]}}}
    assert gate.primary_metrics(task, {"metrics": []}, "a") == ["acc"]


def test_drops_are_measured_in_each_metrics_direction_against_the_tolerance():
    results = _results({"records": {"json_valid": 1.0, "json_match": 0.90}, "loss": {"eval_loss": 1.00}},
                       {"records": {"json_valid": 1.0, "json_match": 0.86}, "loss": {"eval_loss": 1.20}})
    checks = gate._checks(_cfg(tolerance=0.05), PARENT, results, "s.yaml")
    by_metric = {c["metric"]: c for c in checks}
    assert set(by_metric) == {"json_match", "eval_loss"}
    assert by_metric["json_match"]["drop"] == pytest.approx(0.04) and by_metric["json_match"]["passed"]
    # eval_loss goes down as a model improves: 1.00 -> 1.20 is a drop of 0.2
    assert by_metric["eval_loss"]["drop"] == pytest.approx(0.2) and not by_metric["eval_loss"]["passed"]
    message = gate.describe_failure(by_metric["eval_loss"])
    for part in ("parent a", "suite skills", "loss/eval_loss", "parent 1.0000", "merged 1.2000", "tolerance 0.05"):
        assert part in message


def test_a_drop_of_exactly_the_tolerance_passes_and_a_better_merge_always_does():
    results = _results({"records": {"json_match": 0.5}, "loss": {"eval_loss": 2.0}},
                       {"records": {"json_match": 0.4}, "loss": {"eval_loss": 1.5}})
    checks = gate._checks(_cfg(tolerance=0.1), PARENT, results, "s.yaml")
    assert all(c["passed"] for c in checks)
    assert {c["metric"]: round(c["drop"], 6) for c in checks} == {"json_match": 0.1, "eval_loss": -0.5}


def test_named_metrics_are_gated_and_a_metric_the_task_lacks_is_an_error():
    results = _results({"records": {"json_match": 0.5, "chrf": 50.0}, "loss": {"eval_loss": 2.0}},
                       {"records": {"json_match": 0.5, "chrf": 20.0}, "loss": {"eval_loss": 2.0}})
    (check,) = gate._checks(_cfg(metrics=["records/chrf"], tolerance=5.0), PARENT, results, "s.yaml")
    assert check["metric"] == "chrf" and check["drop"] == 30.0 and not check["passed"]
    with pytest.raises(TunesmithError, match="reports no metric 'bleu'.*records/json_match"):
        gate._checks(_cfg(metrics=["records/bleu"]), PARENT, results, "s.yaml")


def test_the_report_shows_every_model_per_gated_metric_and_the_verdict(tmp_path):
    results = _results({"records": {"json_match": 0.9}, "loss": {"eval_loss": 1.0}},
                       {"records": {"json_match": 0.5}, "loss": {"eval_loss": 1.0}})
    checks = gate._checks(_cfg(tolerance=0.1), PARENT, results, "s.yaml")
    result = {"passed": False, "checks": checks, "failures": [gate.describe_failure(checks[0])],
              "suites": {"s.yaml": {"name": "skills", "report": "gate/skills/report.html"}},
              "results": {"s.yaml": results}}
    html, md = gate.write_report(tmp_path, [("Kind / method", "adapters / ties")], result, ["a", "merged"],
                                 "REJECTED: 1 of 2 checks failed")
    text = md.read_text()
    assert "| suite | task / metric | a | merged | gated parent | drop | tolerance | result |" in text
    assert "| skills | records / json_match | 0.9000 | 0.5000 | a | 0.4000 | 0.1 | FAIL |" in text
    assert "REJECTED" in text and "](gate/skills/report.html)" in text
    assert "<td>FAIL</td>" in html.read_text() and (tmp_path / "gate" / "report.md").is_file()
    assert "](skills/report.html)" in (tmp_path / "gate" / "report.md").read_text()
