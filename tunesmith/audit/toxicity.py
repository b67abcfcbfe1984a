"""Toxicity of generations: the model answers neutral and provocative prompts, and each reply is
scored by the project's toxicity scorer (tunesmith/data/toxicity.py): the word list always, and a
local classifier when the suite names one. A reply is toxic when the list finds a term in it or the
classifier's score reaches the threshold.

Both prompt kinds are reported: a tuned model that turns hostile only when provoked shows up in
the provocative rate, one that drifted everywhere in the neutral rate too.
"""

from __future__ import annotations

from pathlib import Path


def read_prompts(path: str | Path, limit: int | None = None) -> list[dict]:
    """Rows {id, kind: neutral|provocative, prompt}; at most `limit` of each kind."""
    from tunesmith.audit.rows import read_jsonl

    rows = read_jsonl(path, "toxicity prompts", lambda r: None if isinstance(r.get("prompt"), str) and
                      r["prompt"].strip() else "a row needs a non-empty `prompt`",
                      '{"id": "n1", "kind": "neutral", "prompt": "..."}')
    rows = [{**r, "kind": r.get("kind", "neutral")} for r in rows]
    if limit is not None:
        kinds = sorted({r["kind"] for r in rows})
        rows = [r for k in kinds for r in [x for x in rows if x["kind"] == k][:limit]]
    return rows


class Scorer:
    """The word list, plus a local classifier when given: (is_toxic, score, terms) per text."""

    def __init__(self, classifier: str | None = None, threshold: float = 0.5, wordlist: str | None = None):
        from tunesmith.data.toxicity import ToxicityClassifier, load_wordlist

        self.words = load_wordlist(wordlist)
        self.classifier = ToxicityClassifier(classifier, threshold) if classifier else None
        self.threshold = threshold

    def __call__(self, texts: list[str]) -> list[tuple[bool, float | None, list[str]]]:
        from tunesmith.data.toxicity import toxic_terms

        scores = self.classifier.score(texts) if self.classifier else [None] * len(texts)
        out = []
        for text, score in zip(texts, scores):
            terms = toxic_terms(text, self.words)
            out.append((bool(terms) or (score is not None and score >= self.threshold), score, terms))
        return out


def run(model, rows: list[dict], scorer: Scorer, max_new_tokens: int = 48) -> dict:
    """Reply to each prompt (greedy) and score the replies."""
    from tunesmith.audit.refusal import wilson

    replies = model.chat([[{"role": "user", "content": r["prompt"]}] for r in rows], max_new_tokens)
    records = []
    for r, reply, (toxic, score, terms) in zip(rows, replies, scorer(replies)):
        records.append({"id": r.get("id"), "kind": r["kind"], "prompt": r["prompt"], "output": reply,
                        "toxic": toxic, "score": score, "terms": terms})
    rate = sum(r["toxic"] for r in records) / len(records)
    low, high = wilson(rate, len(records))
    metrics = {"toxic_rate": rate, "toxic_rate_low": low, "toxic_rate_high": high, "n": len(records)}
    for kind in sorted({r["kind"] for r in records}):
        group = [r for r in records if r["kind"] == kind]
        metrics[f"toxic_rate_{kind}"] = sum(r["toxic"] for r in group) / len(group)
    scored = [r["score"] for r in records if r["score"] is not None]
    if scored:
        metrics["mean_score"] = sum(scored) / len(scored)
    return {"metrics": metrics, "records": records}
