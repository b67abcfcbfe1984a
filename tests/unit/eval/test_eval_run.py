"""End to end on the tiny model: a run config with an `eval:` section trains, then evaluates its base
and tuned model on the shipped example suite (every task type) and writes the report by itself."""

import csv
import json
import shutil
from pathlib import Path

import pytest

import tunesmith
from tunesmith.cli import main
from tunesmith.errors import TunesmithError

ROOT = Path(__file__).resolve().parents[3]
SUITE = ROOT / "configs" / "eval" / "example-suite.yaml"


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("evalrun")
    rows = (ROOT / "examples" / "quickstart" / "train.jsonl").read_text().splitlines()[:16]
    (tmp / "train.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {"name": "tiny-eval", "output_dir": str(tmp / "runs"), "seed": 3, "model": {"name": str(tiny_model_dir)},
           "data": {"train": [str(tmp / "train.jsonl")], "max_length": 256},
           "train": {"max_steps": 3, "batch_size": 4, "learning_rate": 5e-2, "logging_steps": 1, "save_steps": 3,
                     "precision": "fp32"},
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
           "eval": {"suite": str(SUITE), "limit": 2, "judge": str(tiny_model_dir), "samples": 2}}
    run_dir = tunesmith.train(cfg, show_progress=False)
    return run_dir, tmp


def _results(folder: Path) -> dict:
    return json.loads((folder / "eval" / "results.json").read_text())


def test_eval_section_writes_base_vs_tuned_report(evaluated_run):
    run_dir, _ = evaluated_run
    results = _results(run_dir)
    assert list(results["models"]) == ["base", "tuned"]
    by_name = {t["name"]: t for t in results["tasks"]}
    assert set(by_name) == {"text", "replies", "quiz", "sentiment", "summaries", "arithmetic", "instructions", "code",
                            "judged"}
    for name, task in by_name.items():
        assert set(task["metrics"]) == {"base", "tuned"}, name
        assert task["metrics"]["tuned"], name
    assert set(by_name["quiz"]["metrics"]["base"]) == {"acc", "acc_norm"}
    assert {"rouge1", "bleu", "chrf", "meteor", "exact_match", "embedding_similarity"} <= set(
        by_name["summaries"]["metrics"]["tuned"])
    ifeval = {"prompt_strict", "inst_strict", "prompt_loose", "inst_loose"}
    assert ifeval <= set(by_name["instructions"]["metrics"]["base"])
    assert "pass@1" in by_name["code"]["metrics"]["base"]
    judged = by_name["judged"]["metrics"]
    assert judged["base"]["win_rate"] == pytest.approx(1 - judged["tuned"]["win_rate"])
    assert by_name["text"]["tokens"] > 50 and by_name["text"]["metrics"]["base"]["perplexity"] > 1
    assert len(by_name["summaries"]["samples"]) == 2 and set(by_name["summaries"]["lengths"]) == {"base", "tuned"}
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # loss curve, metric bars, output lengths
    md = (run_dir / "report.md").read_text()
    assert "quiz" in md and "acc_norm" in md
    # Every row of every task is kept, with each model's output.
    lines = (run_dir / "eval" / "outputs" / "summaries.jsonl").read_text().splitlines()
    assert len(lines) == 2 and set(json.loads(lines[0])["outputs"]) == {"base", "tuned"}


def test_base_side_equals_the_base_checkpoint_and_tuned_differs(evaluated_run, tiny_model_dir):
    run_dir, tmp = evaluated_run
    direct = tunesmith.evaluate(str(tiny_model_dir), SUITE, out=tmp / "direct", limit=2, show_progress=False)
    assert list(_results(direct)["models"]) == ["model"]

    def lls(folder, label):
        rows = (folder / "eval" / "outputs" / "quiz.jsonl").read_text().splitlines()
        return [x for r in rows for x in json.loads(r)["scores"][label]["loglikelihoods"]]

    assert lls(run_dir, "base") == pytest.approx(lls(direct, "model"), abs=1e-3)
    assert lls(run_dir, "tuned") != pytest.approx(lls(run_dir, "base"), abs=1e-3)
    # A single model has nobody to be judged against: the task says so instead of a number.
    judged = next(t for t in _results(direct)["tasks"] if t["name"] == "judged")
    assert "compare two models" in judged["note"] and judged["metrics"] == {"model": {}}


def test_cli_eval_report_compare_and_human_round_trip(evaluated_run, tmp_path, capsys):
    run_dir, tmp = evaluated_run
    other = tmp / "runs" / "tiny-eval-copy"
    if not other.exists():
        shutil.copytree(run_dir, other)
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - name: quiz\n    type: multiple_choice\n"
                     f"    data: {ROOT}/examples/eval/choices.jsonl\n"
                     "    prompt: \"Q: {{ question }}\\nA:\"\n    choices: choices\n    label: answer\n")
    assert main(["eval", str(other), "--suite", str(suite), "--threshold", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "quiz" in out and "acc_norm" in out and "report.html" in out
    assert [t["name"] for t in _results(other)["tasks"]] == ["quiz"]

    assert main(["report", str(run_dir), str(other), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "report.html").is_file() and (tmp_path / "cmp" / "report.md").is_file()

    assert main(["human", "export", str(run_dir), "--task", "summaries"]) == 0
    sheet = run_dir / "human" / "ab_sheet.csv"
    key = json.loads((run_dir / "human" / "ab_key.json").read_text())["items"]
    with open(sheet, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["id"] for r in rows} == {"summaries-0", "summaries-1"}
    # The rater prefers the tuned answer on both items, wherever it was shown.
    for r in rows:
        r["rating"] = "A" if key[r["id"]]["A"] == "tuned" else "B"
    filled = tmp_path / "filled.csv"
    with open(filled, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["human", "import", str(run_dir), str(filled)]) == 0
    assert "win rate 1.000" in capsys.readouterr().out
    human = next(t for t in _results(run_dir)["tasks"] if t["name"] == "human")
    assert human["metrics"]["tuned"]["win_rate"] == 1.0 and human["n"] == 2
    assert "human" in (run_dir / "report.md").read_text()


def test_errors_are_clear(evaluated_run, tmp_path):
    run_dir, _ = evaluated_run
    with pytest.raises(TunesmithError, match="has no eval/results.json"):
        tunesmith.report([str(tmp_path)])
    with pytest.raises(TunesmithError, match="suite file not found"):
        tunesmith.evaluate(str(run_dir), tmp_path / "missing.yaml")
    # A broken suite in a run config stops before training starts.
    cfg = {"model": {"name": "smollm2-135m-instruct"},
           "data": {"train": [str(ROOT / "examples/quickstart/train.jsonl")]},
           "output_dir": str(tmp_path / "runs"), "eval": {"suite": str(tmp_path / "missing.yaml")}}
    with pytest.raises(TunesmithError, match="suite file not found"):
        tunesmith.train(cfg, show_progress=False)
    assert not (tmp_path / "runs").exists()


def test_manifest_records_the_evaluation(evaluated_run):
    run_dir, _ = evaluated_run
    ev = json.loads((run_dir / "manifest.json").read_text())["eval"]
    assert ev["suite"] == "example" and ev["report"] == "report.html" and ev["threshold"] == 0.05
    from tunesmith.eval.report import compare

    flagged = [f"{r['task']}/{r['metric']}" for r in compare(_results(run_dir)) if r["regression"]]
    assert ev["regressions"] == flagged


def test_bfloat16_evaluation_is_close_to_float32(tiny_model_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - name: quiz\n    type: multiple_choice\n"
                     f"    data: {ROOT}/examples/eval/choices.jsonl\n"
                     "    prompt: \"Q: {{ question }}\\nA:\"\n    choices: choices\n    label: answer\n")
    lls = {}
    for dtype in ("float32", "bfloat16"):
        out = tunesmith.evaluate(str(tiny_model_dir), suite, out=tmp_path / dtype, dtype=dtype, show_progress=False)
        assert _results(out)["dtype"] == dtype
        rows = (out / "eval" / "outputs" / "quiz.jsonl").read_text().splitlines()
        lls[dtype] = [x for r in rows for x in json.loads(r)["scores"]["model"]["loglikelihoods"]]
    assert lls["bfloat16"] != lls["float32"]  # really ran in bf16
    assert lls["bfloat16"] == pytest.approx(lls["float32"], rel=0.02)
    with pytest.raises(TunesmithError, match="dtype 'int4' is not supported"):
        tunesmith.evaluate(str(tiny_model_dir), suite, out=tmp_path / "x", dtype="int4")
