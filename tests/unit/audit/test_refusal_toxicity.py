"""Known answers for the refusal and toxicity checks, on the shipped prompt files."""

from __future__ import annotations

import json

import pytest
from audit_scripted import Scripted

from tunesmith.audit import refusal, toxicity
from tunesmith.audit.run import SUITES_DIR, load_suite
from tunesmith.errors import TunesmithError

SUITE = load_suite("default")["checks"]
PHRASES = SUITE["refusal"]["phrases"]
ROWS = refusal.read_prompts(SUITE["refusal"]["prompts"])
REFUSE = "I'm sorry, but I can't help with that request."
COMPLY = "Sure! Here is a short answer to your question."


def test_shipped_prompts_cover_every_style_both_ways():
    styles = {"plain", "roleplay", "prefix_injection", "fiction", "base64", "leetspeak", "multi_turn"}
    for harmful in (True, False):
        got = {r["style"] for r in ROWS if r["harmful"] is harmful}
        assert got == styles, (harmful, got)
    assert sum(r["harmful"] for r in ROWS) >= 70 and sum(not r["harmful"] for r in ROWS) >= 42
    assert all(len(r["messages"]) >= 3 for r in ROWS if r["style"] == "multi_turn")


@pytest.mark.parametrize("reply, harmful_rate, benign_rate", [(REFUSE, 1.0, 0.0), (COMPLY, 0.0, 1.0)])
def test_always_and_never_refusing_models(reply, harmful_rate, benign_rate):
    result = refusal.run(Scripted(reply=lambda m: reply), ROWS, PHRASES)
    m = result["metrics"]
    assert m["harmful_refusal_rate"] == harmful_rate
    assert m["benign_compliance_rate"] == benign_rate
    assert m["harmful_refusal_rate_low"] <= harmful_rate <= m["harmful_refusal_rate_high"]
    assert all(m[f"refusal_rate_{s}"] == harmful_rate for s in ("plain", "base64", "multi_turn"))
    assert len(result["records"]) == len(ROWS)


def test_a_model_that_refuses_only_harmful_prompts_scores_perfectly():
    harmful = {json.dumps(r["messages"]) for r in ROWS if r["harmful"]}
    model = Scripted(reply=lambda m: REFUSE if json.dumps(m) in harmful else COMPLY)
    m = refusal.run(model, ROWS, PHRASES)["metrics"]
    assert (m["harmful_refusal_rate"], m["benign_compliance_rate"]) == (1.0, 1.0)


def test_one_style_broken_shows_in_that_style_only():
    model = Scripted(reply=lambda m: COMPLY if "base64" in json.dumps(m).lower() or _is_b64(m) else REFUSE)
    m = refusal.run(model, [r for r in ROWS if r["harmful"]], PHRASES)["metrics"]
    assert m["refusal_rate_base64"] == 0.0
    assert m["refusal_rate_plain"] == 1.0
    n64 = sum(r["style"] == "base64" for r in ROWS if r["harmful"])
    assert m["harmful_refusal_rate"] == pytest.approx(1 - n64 / m["n_harmful"])


def _is_b64(messages) -> bool:
    return any(r["style"] == "base64" and r["messages"] == messages for r in ROWS)


@pytest.mark.parametrize("text, expected", [
    ("", True), ("   ", True),
    ("I can\u2019t help with that.", True),  # curly apostrophe
    ("Sorry for the wait! Here's how to restart the service: run systemctl restart.", False),  # apology only
    ("x" * 400 + " I cannot do that", False),  # past the rule's window
    ("As an AI, I must decline.", True),
])
def test_the_documented_rule(text, expected):
    assert refusal.is_refusal(text, refusal._phrases(PHRASES)) is expected


def test_judge_verdicts_are_reported_beside_the_rule():
    model = Scripted(reply=lambda m: COMPLY)
    seen = []

    def judge(conversations):
        seen.extend(conversations)
        return ["REFUSED"] * len(conversations)

    m = refusal.run(model, ROWS[:10], PHRASES, judge=judge)["metrics"]
    assert len(seen) == 10 and COMPLY in seen[0][0]["content"]
    harmful = [r for r in ROWS[:10] if r["harmful"]]
    assert m["judge_harmful_refusal_rate"] == 1.0 if harmful else True
    assert m["harmful_refusal_rate"] == 0.0
    assert m["judge_rule_agreement"] == 0.0


def test_limit_keeps_each_kind_and_spreads_styles():
    rows = refusal._limited(ROWS, 7)
    assert sum(r["harmful"] for r in rows) == 7 and sum(not r["harmful"] for r in rows) == 7
    assert len({r["style"] for r in rows if r["harmful"]}) == 7


def test_bad_prompt_files_are_named_with_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"harmful": true, "messages": [{"role": "user", "content": "x"}]}\nnot json\n'
                    '{"harmful": "yes", "messages": []}\n')
    with pytest.raises(TunesmithError) as info:
        refusal.read_prompts(path)
    lines = [p.line for p in info.value.problems]
    assert lines == [2, 3]


def test_toxicity_known_answers(tmp_path):
    rows = toxicity.read_prompts(SUITE["toxicity"]["prompts"])
    kinds = {r["kind"] for r in rows}
    assert kinds == {"neutral", "provocative"}
    words = tmp_path / "words.txt"
    words.write_text("grumpyword\n")
    scorer = toxicity.Scorer(wordlist=str(words))
    clean = toxicity.run(Scripted(reply=lambda m: "What a lovely day."), rows, scorer)["metrics"]
    assert clean["toxic_rate"] == 0.0
    provoked = toxicity.run(Scripted(reply=lambda m: "You grumpyword!" if "furious" in m[-1]["content"].lower()
                                     or m[-1]["content"] == rows[-1]["prompt"] else "Fine."), rows, scorer)
    n_hit = sum(("furious" in r["prompt"].lower()) or r is rows[-1] for r in rows)
    assert provoked["metrics"]["toxic_rate"] == pytest.approx(n_hit / len(rows))
    assert provoked["records"][-1]["terms"] == ["grumpyword"]
    shipped = toxicity.Scorer()
    term = sorted(shipped.words)[0]
    assert toxicity.run(Scripted(reply=lambda m: f"well {term} then"), rows[:4], shipped)["metrics"]["toxic_rate"] == 1


def test_suite_errors_name_file_line_and_fix(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("checks:\n  refusl:\n    prompts: x.jsonl\n  toxicity:\n    prompts: missing.jsonl\n"
                     "    treshold: 0.4\n")
    with pytest.raises(TunesmithError) as info:
        load_suite(suite)
    text = str(info.value)
    assert "did you mean 'refusal'?" in text and "did you mean 'threshold'?" in text
    assert "file not found" in text and ":5" in text
    assert (SUITES_DIR / "default.yaml").is_file()
