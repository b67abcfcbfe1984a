"""PII detector quality on the labelled sets in tests/corpus/pii/*.jsonl (tune.jsonl, the set the
rules were tuned on, and heldout.jsonl, written blind to them, when present).

Scoring is exact: a found match counts only when its type and [start, end) equal a labelled entity
(CONVENTION.md in that folder says what the span of each type is). `pytest -s` prints the table.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tunesmith.data.pii import find_pii, pii_types

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "pii"
SETS = sorted(CORPUS.glob("*.jsonl"))
MIN_RECALL, MIN_PRECISION = 0.98, 0.97
KINDS = ("positive", "hard_negative", "mixed")


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score(rows: list[dict]) -> tuple[dict[str, Counter], list[str]]:
    """Per type: true positives, false positives, false negatives; and a line per mistake."""
    counts = {t: Counter() for t in pii_types()}
    mistakes = []
    for row in rows:
        gold = {(e["type"], e["start"], e["end"]) for e in row["entities"]}
        found = {(m.type, m.start, m.end) for m in find_pii(row["text"])}
        text = row["text"]
        for t, _, _ in gold & found:
            counts[t]["tp"] += 1
        for t, s, e in found - gold:
            counts[t]["fp"] += 1
            mistakes.append(f"{row['id']} FP {t} {text[s:e]!r} in {text!r}")
        for t, s, e in gold - found:
            counts[t]["fn"] += 1
            mistakes.append(f"{row['id']} FN {t} {text[s:e]!r} in {text!r}")
    return counts, mistakes


def ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def table(name: str, counts: dict[str, Counter]) -> str:
    lines = [f"{name}", f"{'type':<12} {'gold':>5} {'found':>5} {'tp':>5} {'recall':>7} {'precision':>9}"]
    for t, c in counts.items():
        lines.append(f"{t:<12} {c['tp'] + c['fn']:>5} {c['tp'] + c['fp']:>5} {c['tp']:>5} "
                     f"{ratio(c['tp'], c['tp'] + c['fn']):>7.3f} {ratio(c['tp'], c['tp'] + c['fp']):>9.3f}")
    return "\n".join(lines)


@pytest.mark.parametrize("path", SETS, ids=[p.stem for p in SETS])
def test_recall_and_precision_per_type(path):
    counts, mistakes = score(load(path))
    print("\n" + table(path.name, counts))
    low = [f"{t}: recall {ratio(c['tp'], c['tp'] + c['fn']):.3f}, precision {ratio(c['tp'], c['tp'] + c['fp']):.3f}"
           for t, c in counts.items()
           if ratio(c["tp"], c["tp"] + c["fn"]) < MIN_RECALL or ratio(c["tp"], c["tp"] + c["fp"]) < MIN_PRECISION]
    assert not low, "\n".join(low + ["mistakes (first 40):"] + mistakes[:40])


def test_labelled_sets_are_well_formed_and_large_enough():
    assert SETS, f"no labelled set in {CORPUS}"
    rows = [(path.name, row) for path in SETS for row in load(path)]
    problems = []
    for name, row in rows:
        where = f"{name}:{row.get('id')}"
        if row.get("kind") not in KINDS:
            problems.append(f"{where}: kind {row.get('kind')!r}")
        if row["kind"] == "hard_negative" and row["entities"]:
            problems.append(f"{where}: a hard negative with entities")
        spans = sorted((e["start"], e["end"]) for e in row["entities"])
        for e in row["entities"]:
            if e["type"] not in pii_types() or not 0 <= e["start"] < e["end"] <= len(row["text"]):
                problems.append(f"{where}: bad entity {e}")
            elif row["text"][e["start"]:e["end"]] != row["text"][e["start"]:e["end"]].strip():
                problems.append(f"{where}: span {row['text'][e['start']:e['end']]!r} has outer whitespace")
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            problems.append(f"{where}: overlapping entities")
    ids = Counter(f"{name}:{row.get('id')}" for name, row in rows)
    problems += [f"{i}: id used {n} times" for i, n in ids.items() if n > 1]
    assert not problems, "\n".join(problems[:40])
    negatives = sum(row["kind"] == "hard_negative" for _, row in rows)
    assert len(rows) >= 400, f"{len(rows)} rows in all, want >= 400"
    assert negatives * 3 >= len(rows), f"{negatives} hard negatives of {len(rows)} rows, want >= a third"
    assert len({row["lang"] for _, row in rows}) >= 5, "want >= 5 languages"
