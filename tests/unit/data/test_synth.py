"""Synthetic data: lenient parsing of model replies, self-instruct's shape, and the gate that
dedups, filters and caps synthetic rows."""

from __future__ import annotations

import json
import random

import pytest

import tunesmith
from tunesmith.data.formats import Example
from tunesmith.data.synth import finalize_synthetic, parse_answer, parse_task, self_instruct, to_examples
from tunesmith.errors import TunesmithError

# A vocabulary of made-up words, so that generated rows share almost no 5-grams or characters and
# only the duplicates a test plants are duplicates.
_LETTERS = "bcdfghklmnprstvz"
_VOWELS = "aeiou"


def sentence(rng: random.Random, n: int = 9) -> str:
    words = ["".join(rng.choice(_LETTERS) + rng.choice(_VOWELS) for _ in range(3)) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def row(question: str, answer: str, file: str = "real.jsonl", line: int = 1) -> Example:
    return Example([{"role": "user", "content": question}, {"role": "assistant", "content": answer}], file, line)


def rows(n: int, seed: int, file: str) -> list[Example]:
    rng = random.Random(seed)
    return [row(sentence(rng), sentence(rng), file, i + 1) for i in range(n)]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("reply, expected", [
    ("Instruction: Write a haiku about autumn.\nInput: <noinput>", ("Write a haiku about autumn.", "")),
    ("**Task 4**\n**Instruction:** Convert the temperature.\n**Input:** 25 C\n**Output:** 77 F",
     ("Convert the temperature.", "25 C")),
    ("Sure! Here is a new task:\n4. Summarize the paragraph in one sentence.\nInput: The cat sat all day.",
     ("Summarize the paragraph in one sentence.", "The cat sat all day.")),
    ("Task 4: List three fruits that are red.", ("List three fruits that are red.", "")),
    ('"Name a famous painter."\n\nInput: N/A', ("Name a famous painter.", "")),
    ("task 5 instruction - Sort the numbers.\ninput: 3, 1, 2", ("Sort the numbers.", "3, 1, 2")),
    ("Task-oriented dialogue systems need data. Describe one.", ("Task-oriented dialogue systems need data. "
                                                                 "Describe one.", "")),
])
def test_parse_task_reads_what_small_models_write(reply, expected):
    task = parse_task(reply)
    assert (task["instruction"], task["input"]) == expected


@pytest.mark.parametrize("reply", ["", "   \n ", "Instruction:\nInput: none", "Task 4\n\n"])
def test_parse_task_gives_none_without_an_instruction(reply):
    assert parse_task(reply) is None


def test_parse_answer_drops_labels():
    assert parse_answer("Output: 77 F") == "77 F"
    assert parse_answer("**Answer:**\nParis is the capital.") == "Paris is the capital."
    assert parse_answer("The answer is 4.") == "The answer is 4."


# --------------------------------------------------------------------------- finalize_synthetic


def test_cap_is_a_fraction_of_the_final_set():
    real, synthetic = rows(100, 0, "real.jsonl"), rows(60, 1, "synth.jsonl")
    final, report = finalize_synthetic(real, synthetic, max_fraction=0.3, seed=0)
    # s / (100 + s) <= 0.3  ->  s <= 42.86: 42 synthetic rows (42/142 = 0.296; 43/143 = 0.301).
    assert report["max_synthetic"] == 42 and report["kept"] == 42
    assert report["dropped"] == {"over_cap": 18} and report["generated"] == 60
    assert len(final) == 142 and final[:100] == real
    assert all(e.extra["synthetic"] for e in final[100:])
    again, _ = finalize_synthetic(real, synthetic, max_fraction=0.3, seed=0)
    other, _ = finalize_synthetic(real, synthetic, max_fraction=0.3, seed=1)
    assert [e.line for e in again] == [e.line for e in final] != [e.line for e in other]


@pytest.mark.parametrize("fraction, real, expected", [(0.5, 10, 10), (0.2, 8, 2), (0.0, 50, 0), (0.1, 9, 1),
                                                       (0.25, 3, 1), (1.0, 5, 30)])
def test_cap_arithmetic(fraction, real, expected):
    _, report = finalize_synthetic(rows(real, 0, "r"), rows(30, 1, "s"), max_fraction=fraction, seed=0)
    assert report["kept"] == expected
    assert report["synthetic_fraction"] <= fraction


def test_reasons_for_dropping():
    real = rows(20, 0, "real.jsonl")
    rng = random.Random(5)
    good = [row(sentence(rng), sentence(rng), "synth.jsonl", i) for i in range(1, 4)]
    q, a = sentence(rng), sentence(rng)
    long_q, long_a = sentence(rng, 30), sentence(rng, 30)
    planted = [
        row(real[3].messages[0]["content"], real[3].messages[1]["content"], "synth.jsonl", 10),  # copy of real
        row(real[4].messages[0]["content"], sentence(rng), "synth.jsonl", 11),  # real question, new answer
        row(q, a, "synth.jsonl", 12),
        row(q.upper(), a, "synth.jsonl", 13),  # exact after normalising case
        row(long_q, long_a, "synth.jsonl", 14),
        row(long_q.replace(long_q.split()[5], "zazaza"), long_a, "synth.jsonl", 15),  # a near duplicate
        row("Write a poem about the sea.", "", "synth.jsonl", 16),
        row("", "An answer to nothing.", "synth.jsonl", 17),
        row("Translate the sentence into French.", "Translate the sentence into French.", "synth.jsonl", 18),
        row("Name a colour.", "the the the the the the", "synth.jsonl", 19),
        row("What is your opinion on cats?", "As an AI language model, I have no opinions.", "synth.jsonl", 20),
        row("Describe it.", "@@@ ### $$$ %%% ^^^", "synth.jsonl", 21),
        row("Give one fruit.", "Fig.", "synth.jsonl", 22),
    ]
    final, report = finalize_synthetic(real, good + planted, max_fraction=1.0, seed=0,
                                       quality={"min_chars": 30})
    assert report["dropped"] == {"duplicate_of_real": 2, "duplicate": 2, "empty_answer": 1, "empty_prompt": 1,
                                 "echoes_prompt": 1, "degenerate_answer": 2, "refusal": 1, "quality:too_short": 1}
    assert report["dropped_rows"]["duplicate_of_real"] == ["synth.jsonl:10", "synth.jsonl:11"]
    assert report["kept"] == 5 and [e.line for e in final[20:]] == [1, 2, 3, 12, 14]


def test_near_duplicates_of_real_rows_and_exact_mode():
    real = [row("Explain why the river flooded the lower fields after the long storm in early spring this year.",
                "Heavy rain upstream filled the river faster than the channel could carry the water away, "
                "so it spread over the low fields near the village and stayed there for days.")]
    near = row(real[0].messages[0]["content"].replace("early", "late"), real[0].messages[1]["content"], "s", 1)
    _, report = finalize_synthetic(real, [near], max_fraction=1.0, seed=0)
    assert report["dropped"] == {"duplicate_of_real": 1}
    _, report = finalize_synthetic(real, [near], max_fraction=1.0, seed=0, dedup="exact")
    assert report["kept"] == 1


def test_finalize_refuses_bad_settings():
    with pytest.raises(TunesmithError) as e:
        finalize_synthetic([], [], max_fraction=1.5, seed=0, quality={"min_char": 3}, dedup="fuzzy")
    text = str(e.value)
    assert "max_fraction=1.5" in text and "'min_char'" in text and "dedup='fuzzy'" in text


def test_to_examples_labels_rows():
    out = to_examples([{"instruction": "Add the numbers.", "input": "2, 3", "output": "5", "generator": "m"},
                       {"instruction": "Say hi.", "output": ""}])
    assert out[0].messages == [{"role": "user", "content": "Add the numbers.\n\n2, 3"},
                               {"role": "assistant", "content": "5"}]
    assert out[0].extra == {"synthetic": True, "generator": "m"} and out[1].line == 2
    _, report = finalize_synthetic([], out, max_fraction=1.0, seed=0)
    assert report["dropped"] == {"empty_answer": 1}


# --------------------------------------------------------------------------- self_instruct


@pytest.fixture
def seed_tasks(shared_data) -> list[dict]:
    """The 175 seed tasks of the self-instruct paper (a skip naming the file when it is missing)."""
    path = shared_data("alpaca/seed_tasks.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_self_instruct_with_a_tiny_model_gives_well_formed_rows(tiny_model_dir, seed_tasks):
    from tunesmith.inference import Generator

    generate = Generator(tunesmith.load(tiny_model_dir))
    report, again = {}, {}
    out = self_instruct(seed_tasks, generate, n=3, seed=0, max_new_tokens=12, batch_size=3, max_rounds=2,
                        report=report)
    assert out == self_instruct(seed_tasks, generate, n=3, seed=0, max_new_tokens=12, batch_size=3, max_rounds=2,
                                report=again)
    # A random model rarely stops or follows the format: every prompt is accounted for, as a row
    # or as a reason, and max_rounds ends the loop.
    assert report == again and report["prompts"] <= 6 and len(out) <= 3
    assert report["rows"] + sum(report["skipped"].values()) == report["prompts"]
    for r in out:
        assert set(r) >= {"instruction", "input", "output", "synthetic", "generator", "shown"}
        assert r["synthetic"] is True and r["instruction"] and r["output"]


def test_self_instruct_parses_and_filters_replies(seed_tasks, monkeypatch):
    from tunesmith.data import augment

    task_replies = iter(["Instruction: Draw a picture of a cat.",  # blocked: a text model cannot draw
                         "Task 4\nInstruction: Name three rivers in Africa.\nInput: <noinput>",
                         "Write task 4: one new task, different from all of the above.",  # copies the prompt
                         "Instruction: Name three rivers in Africa.",  # a repeat
                         "Instruction: Add the two numbers.\nInput: 2 and 3"])

    def fake(generate, prompts, **kw):
        if kw["temperature"] > 0:  # instructions are sampled, answers greedy
            return [(next(task_replies), False) for _ in prompts]
        return [(f"Output: Reply {len(p)} to the task.", "Add" in p) for p in prompts]

    monkeypatch.setattr(augment, "generate_replies", fake)
    report = {}
    out = self_instruct(seed_tasks, object(), n=2, seed=0, batch_size=5, report=report)
    assert [(r["instruction"], r["input"], r["output"], r["truncated"]) for r in out] == [
        ("Name three rivers in Africa.", "", "Reply 28 to the task.", False),
        ("Add the two numbers.", "2 and 3", "Reply 29 to the task.", True)]
    assert report == {"prompts": 5, "rows": 2,
                      "skipped": {"unusable_instruction": 1, "copies_prompt": 1, "repeat": 1}}
    # A cut-off answer is kept in the rows and dropped, with its reason, by finalize_synthetic.
    final, summary = finalize_synthetic([], to_examples(out), max_fraction=1.0, seed=0)
    assert summary["dropped"] == {"truncated_answer": 1} and len(final) == 1


def test_self_instruct_refuses_bad_arguments():
    with pytest.raises(TunesmithError, match="no seed tasks"):
        self_instruct([], object(), n=2, seed=0)
    with pytest.raises(TunesmithError, match="have no instruction"):
        self_instruct([{"instances": []}], object(), n=2, seed=0)


def test_self_instruct_with_the_embedded_model(seed_tasks):
    from tunesmith.inference import Generator

    generate = Generator(tunesmith.load("smollm2-135m-instruct"))
    out = self_instruct(seed_tasks, generate, n=2, seed=0, max_new_tokens=48, num_examples=2)
    assert len(out) == 2
    for r in out:
        assert r["synthetic"] is True and r["generator"] == "smollm2-135m-instruct"
        assert len(r["instruction"].split()) >= 3 and r["output"].strip()
