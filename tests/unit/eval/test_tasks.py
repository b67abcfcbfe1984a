"""Suites and tasks: loading, presets, templates, gold labels, every problem reported at once."""

import textwrap
from pathlib import Path

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.eval import tasks as T

ROOT = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_shipped_example_suite_loads_with_every_task_type():
    suite = T.load_suite(ROOT / "configs" / "eval" / "example-suite.yaml")
    assert suite.name == "example"
    # every type but harness, which needs lm-eval's own data (tests/unit/eval/test_harness.py)
    assert {t.type for t in suite.tasks} == set(T.TYPES) - {"harness"}
    for t in suite.tasks:
        assert Path(t.data).is_file(), t.data
    code = next(t for t in suite.tasks if t.type == "code")
    assert code.preset == "humaneval-chat" and "```python" in code.prompt  # preset fields merged in
    assert code.max_new_tokens == 64  # the task's own value beats the preset's 256


def test_bench_suite_over_the_shared_samples_loads(shared_data):
    shared_data("hellaswag")
    suite = T.load_suite(ROOT / "bench" / "suites" / "shared-samples.yaml")
    assert [t.name for t in suite.tasks] == ["hellaswag", "mmlu", "ifeval", "gsm8k", "dialogsum"]


def test_every_problem_in_a_suite_is_reported_at_once(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"q": "x"}\n')
    path = write(tmp_path / "suite.yaml", """
        tasks:
          - preset: hellaswagg
            data: rows.jsonl
          - type: generation
            data: missing.jsonl
            prompt: "{{ q }}"
            reference: "{{ q }}"
            metrics: [rouge, blue]
          - type: code
            name: twice
            data: rows.jsonl
            prompt: "{{ q }}"
            ks: [1, 10]
          - type: multiple_choice
            name: twice
            data: rows.jsonl
            prompt: "{{ q }}"
            colour: red
    """)
    with pytest.raises(TunesmithError) as e:
        T.load_suite(path)
    text = str(e.value)
    for expected in ("unknown preset 'hellaswagg'", "missing.jsonl not found", "unknown metrics ['blue']",
                     "pass@10 needs at least that many samples", "two tasks are named 'twice'",
                     "unknown task key 'colour'", "needs `choices`"):
        assert expected in text, expected
    assert str(path) in text


def test_missing_suite_and_bad_yaml_say_so(tmp_path):
    with pytest.raises(TunesmithError, match="suite file not found"):
        T.load_suite(tmp_path / "nope.yaml")
    bad = write(tmp_path / "bad.yaml", "tasks: [\n")
    with pytest.raises(TunesmithError, match="not valid YAML"):
        T.load_suite(bad)
    empty = write(tmp_path / "empty.yaml", "name: x\n")
    with pytest.raises(TunesmithError, match="non-empty `tasks:`"):
        T.load_suite(empty)


def test_mmlu_preset_renders_lm_eval_prompt():
    spec = T.TaskSpec(**{k: v for k, v in T.presets()["mmlu"].items()}, name="mmlu", data="x.jsonl")
    row = {"subject": "high_school_biology", "question": " What carries oxygen? ",
           "choices": ["Platelets", "Red blood cells", "Plasma", "Neurons"], "answer": 1}
    text = T.render(spec.prompt, row, spec, 1)
    assert text == ("The following are multiple choice questions (with answers) about high school biology.\n\n"
                    "What carries oxygen?\nA. Platelets\nB. Red blood cells\nC. Plasma\nD. Neurons\nAnswer:")
    assert [T.render(spec.continuation, row, spec, 1, choice=c, index=i) for i, c in enumerate(spec.choices)] == [
        " A", " B", " C", " D"]


def test_template_error_names_file_line_and_fields():
    spec = T.TaskSpec(name="t", data="data.jsonl")
    with pytest.raises(TunesmithError) as e:
        T.render("{{ question }}", {"prompt": "hi", "id": 3}, spec, 17)
    text = str(e.value)
    assert "data.jsonl:17" in text and "question" in text and "['id', 'prompt']" in text


def test_templates_are_sandboxed():
    spec = T.TaskSpec(name="t", data="d.jsonl")
    with pytest.raises(TunesmithError):
        T.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}, spec, 1)


@pytest.mark.parametrize("label,value,want", [
    ("label", 2, 2), ("label", "1", 1), ("label", "Positive", 1), ("label", "neutral", 2), ("gold", "C", 2),
])
def test_gold_label_by_index_text_or_letter(label, value, want):
    spec = T.TaskSpec(name="t", data="d.jsonl", label=label)
    options = ["A", "B", "C"] if label == "gold" else ["negative", "positive", "neutral"]
    assert T._gold(spec, {label: value}, 1, options) == want


@pytest.mark.parametrize("value,message", [(5, "outside the 3 options"), ("sad", "not one of the options"),
                                           (None, "no gold label")])
def test_bad_gold_label_is_a_located_error(value, message):
    spec = T.TaskSpec(name="t", data="d.jsonl")
    with pytest.raises(TunesmithError, match=message) as e:
        T._gold(spec, {"label": value}, 9, ["negative", "positive", "neutral"])
    assert "d.jsonl:9" in str(e.value)


def test_read_rows_honours_limit_and_reports_bad_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(f'{{"i": {i}}}\n' for i in range(10)))
    rows = T.read_rows(T.TaskSpec(name="t", data=str(good), limit=3))
    assert [r["i"] for _, r in rows] == [0, 1, 2] and [line for line, _ in rows] == [1, 2, 3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"i": 0}\n{oops\n[1, 2]\n')
    with pytest.raises(TunesmithError) as e:
        T.read_rows(T.TaskSpec(name="t", data=str(bad)))
    assert "bad.jsonl:2" in str(e.value) and "bad.jsonl:3" in str(e.value)


@pytest.mark.parametrize("answer,want", [
    ("Sure!\n```python\ndef f(x):\n    return x\n```\nThis returns x.", "\ndef f(x):\n    return x\n"),
    ("```\n    return 1\n```", "\n    return 1\n"),
    ("    return a + b\n", "    return a + b\n"),         # a plain continuation is kept as it is
    ("```python\ndef g():\n    pass", "\ndef g():\n    pass"),  # an unclosed block (max_new_tokens hit)
])
def test_code_is_taken_from_the_first_fenced_block(answer, want):
    assert T._code_of(answer) == want


def test_callers_limit_replaces_task_and_suite_limits(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"q": "x"}\n')
    path = write(tmp_path / "suite.yaml", """
        limit: 50
        tasks:
          - {name: a, type: ifeval, data: rows.jsonl, prompt: "{{ q }}", limit: 200}
          - {name: b, type: ifeval, data: rows.jsonl, prompt: "{{ q }}"}
    """)
    assert [t.limit for t in T.load_suite(path).tasks] == [200, 50]
    assert [t.limit for t in T.load_suite(path, limit=3).tasks] == [3, 3]


@pytest.fixture(scope="module")
def tiny_loaded(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.inference import Loaded

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return Loaded(model, AutoTokenizer.from_pretrained(tiny_model_dir), "tiny")


def test_shared_prefix_scoring_keeps_the_shipped_choices_predictions(tiny_loaded, monkeypatch):
    from tunesmith.eval import scoring

    spec = T.TaskSpec(name="choices", type="multiple_choice", data=str(ROOT / "examples" / "eval" / "choices.jsonl"),
                      prompt="Question: {{ question }}\nAnswer:", choices="choices", label="answer")
    rows = T.read_rows(spec)
    new = T.run_choices(tiny_loaded, spec, rows, batch_size=2)
    monkeypatch.setattr(scoring, "loglikelihoods", scoring.loglikelihoods_reference)
    old = T.run_choices(tiny_loaded, spec, rows, batch_size=2)
    assert [r["output"] for r in new.records] == [r["output"] for r in old.records]
    assert new.metrics == old.metrics
    for a, b in zip(new.records, old.records):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=2e-4)


def test_batched_greedy_generation_equals_one_at_a_time(tiny_loaded):
    from tunesmith.inference import generate

    prompts = ["Hi", "Tell me a long story about a cat who sat on a mat in the sun", "2+2=",
               "Write one sentence.", "What is the capital of France? Answer in one word, please.", "Ok"]
    convs = [[{"role": "user", "content": p}] for p in prompts]
    one = [generate(tiny_loaded, [c], max_new_tokens=12)[0] for c in convs]
    assert generate(tiny_loaded, convs, max_new_tokens=12, batch_size=4) == one
    raw = [generate(tiny_loaded, [p], max_new_tokens=12, chat=False, stop=["\n"])[0] for p in prompts]
    assert generate(tiny_loaded, prompts, max_new_tokens=12, batch_size=3, chat=False, stop=["\n"]) == raw
