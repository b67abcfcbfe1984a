"""Evaluation on the embedded SmolLM2: known answers, and the shared-samples suite end to end."""

import json
from pathlib import Path

import pytest

import tunesmith

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_real_model_answers_easy_questions_by_log_likelihood(smollm2_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
tasks:
  - name: quiz
    type: multiple_choice
    data: {ROOT}/examples/eval/choices.jsonl
    prompt: "Question: {{{{ question }}}}\\nAnswer:"
    choices: choices
    label: answer
  - name: capitals
    type: generation
    data: {tmp_path}/capitals.jsonl
    prompt: "What is the capital of {{{{ country }}}}? Answer with the city name only."
    reference: "{{{{ city }}}}"
    metrics: [exact_match, chrf]
    max_new_tokens: 8
""")
    (tmp_path / "capitals.jsonl").write_text("".join(
        json.dumps({"country": c, "city": t}) + "\n" for c, t in [("France", "Paris"), ("Japan", "Tokyo"),
                                                                  ("Italy", "Rome")]))
    out = tunesmith.evaluate("smollm2-135m-instruct", suite, out=tmp_path / "ev", show_progress=False)
    results = json.loads((out / "eval" / "results.json").read_text())
    quiz, capitals = (t["metrics"]["model"] for t in results["tasks"])
    # Six easy questions (capital of France, legs of a spider, ...): a random scorer gets 1.5 right.
    assert quiz["acc"] >= 4 / 6
    rows = [json.loads(x) for x in (out / "eval" / "outputs" / "quiz.jsonl").read_text().splitlines()]
    assert rows[0]["outputs"]["model"] == "Paris"
    outputs = (out / "eval" / "outputs" / "capitals.jsonl").read_text().splitlines()
    answers = [json.loads(x)["outputs"]["model"] for x in outputs]
    assert sum(city in a for city, a in zip(["Paris", "Tokyo", "Rome"], answers)) >= 2, answers
    assert capitals["chrf"] > 20  # "The capital of France is Paris." against "Paris"


def test_shared_samples_suite_writes_a_report(smollm2_dir, shared_data, tmp_path):
    shared_data("ifeval_dev")
    out = tunesmith.evaluate("smollm2-135m-instruct", ROOT / "bench" / "suites" / "shared-samples.yaml",
                             out=tmp_path / "shared", limit=3, show_progress=False)
    results = json.loads((out / "eval" / "results.json").read_text())
    metrics = {t["name"]: t["metrics"]["model"] for t in results["tasks"]}
    assert set(metrics) == {"hellaswag", "mmlu", "ifeval", "gsm8k", "dialogsum"}
    assert set(metrics["hellaswag"]) == {"acc", "acc_norm"}
    assert {"prompt_strict", "inst_loose"} <= set(metrics["ifeval"])
    assert "final_answer_acc" in metrics["gsm8k"] and "rougeL" in metrics["dialogsum"]
    for task in metrics.values():
        assert all(0 <= v <= 100 for v in task.values())
    html = (out / "report.html").read_text()
    assert "dialogsum" in html and html.count("data:image/png;base64,") >= 2
