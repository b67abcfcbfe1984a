"""The curation pipeline: the `data.clean` steps applied to loaded records, with a report.

Order, and why: normalise first (so that dedup sees "café" and "cafe\u0301" as one text), then
quality and language filters, PII and toxicity, decontamination, and dedup last (so that a row
dropped for another reason never "keeps" a duplicate that is then lost too). Every dropped row is
reported with its file:line and reason; counts before and after go into the report.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from tunesmith.data.formats import Example
from tunesmith.data.load import load_examples

MAX_LISTED = 200  # rows listed per reason in the report (counts are always complete)


def texts_of(ex: Example) -> list[str]:
    """Every string of a record that a model reads or learns (what curation inspects)."""
    out = [m.get("content") or "" for m in ex.messages or []]
    for key in ("chosen", "rejected", "completion"):
        out += [m.get("content") or "" for m in ex.extra.get(key) or []]
    if "text" in ex.extra:
        out.append(ex.extra["text"])
    return out


def map_texts(ex: Example, fn) -> Example:
    """A copy of `ex` with `fn` applied to every string texts_of() returns."""
    def msgs(ms):
        return [{**m, "content": fn(m["content"])} if isinstance(m.get("content"), str) else m for m in ms]

    extra = dict(ex.extra)
    for key in ("chosen", "rejected", "completion"):
        if key in extra:
            extra[key] = msgs(extra[key])
    if "text" in extra:
        extra["text"] = fn(extra["text"])
    return Example(msgs(ex.messages) if ex.messages else ex.messages, ex.file, ex.line, ex.kind, extra)


def joined(ex: Example) -> str:
    return "\n".join(t for t in texts_of(ex) if t)


def to_row(ex: Example) -> dict:
    """A record in a shape the loaders read back (the cleaned file's format); synthetic rows keep
    their label so that later steps and reports can tell them apart."""
    row = _row(ex)
    if ex.extra.get("synthetic"):
        row["synthetic"] = True
    return row


def _row(ex: Example) -> dict:
    if ex.kind == "chat":
        return {"messages": ex.messages, **({"tools": ex.extra["tools"]} if ex.extra.get("tools") else {})}
    if ex.kind == "preference":
        return {"prompt": ex.messages, "chosen": ex.extra["chosen"], "rejected": ex.extra["rejected"]}
    if ex.kind == "kto":
        return {"prompt": ex.messages, "completion": ex.extra["completion"], "label": ex.extra["label"]}
    if ex.kind == "classification":
        return {"text": ex.extra["text"], "label": ex.extra["label"]}
    if ex.kind == "vision":  # bare {type: image} parts take the `images` entries in order (data/vision.py)
        return {"messages": ex.messages, "images": ex.extra["images"]}
    return {"text": ex.extra["text"]}


def fingerprint(examples: list[Example]) -> str:
    """sha256 over the records' canonical JSON: the 'hash before/after' of a curation step."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(to_row(ex), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


class _Report:
    def __init__(self, examples):
        self.steps: list[dict] = []
        self.dropped: dict[str, list[str]] = {}
        self.counts: Counter = Counter()
        self.start = {"rows": len(examples), "sha256": fingerprint(examples)}

    def drop(self, reason: str, ex: Example, detail: str = "") -> None:
        self.counts[reason] += 1
        listed = self.dropped.setdefault(reason, [])
        if len(listed) < MAX_LISTED:
            listed.append(f"{ex.file}:{ex.line}" + (f" ({detail})" if detail else ""))

    def step(self, name: str, before: int, after: list[Example], **info) -> None:
        self.steps.append({"step": name, "rows_before": before, "rows_after": len(after), **info})


def _filter(examples, report: _Report, reason_of) -> list[Example]:
    kept = []
    for ex in examples:
        reason = reason_of(ex)
        if reason:
            report.drop(reason[0], ex, reason[1])
        else:
            kept.append(ex)
    return kept


def curate(examples: list[Example], c) -> tuple[list[Example], dict]:
    """Apply the CleanConfig `c` steps; returns (kept records, report)."""
    from tunesmith.data import clean as cl

    report = _Report(examples)
    if c.normalize or c.strip_html or c.strip_boilerplate:
        def norm(t):
            t = cl.normalize_text(t, nfc=c.normalize, whitespace=c.normalize, strip_html=c.strip_html)
            return cl.strip_boilerplate(t) if c.strip_boilerplate else t
        changed = 0
        out = []
        for ex in examples:
            new = map_texts(ex, norm)
            changed += texts_of(new) != texts_of(ex)
            out.append(new)
        examples = out
        report.step("normalize", len(out), out, rows_changed=changed)

    n = len(examples)

    def quality(ex):
        reasons = cl.quality_reasons(joined(ex), min_chars=c.min_chars, max_chars=c.max_chars,
                                     max_repetition=c.max_repetition, max_symbol_ratio=c.max_symbol_ratio,
                                     languages=c.languages or None)
        return (f"quality:{reasons[0]}", ", ".join(reasons)) if reasons else None

    examples = _filter(examples, report, quality)
    report.step("quality", n, examples)
    if c.pii != "off":
        examples = _pii(examples, c.pii, report)
    if c.toxicity != "off":
        examples = _toxicity(examples, c, report)
    if c.decontaminate:
        examples = _decontaminate(examples, c, report)
    if c.dedup != "none":
        examples = _dedup(examples, c, report)
    summary = {"before": report.start, "after": {"rows": len(examples), "sha256": fingerprint(examples)},
               "dropped": dict(report.counts), "dropped_rows": report.dropped, "steps": report.steps}
    return examples, summary


def _pii(examples, policy: str, report: _Report) -> list[Example]:
    from tunesmith.data.pii import apply_pii_policy

    totals: Counter = Counter()
    rows_with = 0
    kept, n = [], len(examples)
    for ex in examples:
        counts: Counter = Counter()

        def fix(t, counts=counts):
            new, found = apply_pii_policy(t, "redact" if policy == "redact" else "report")
            counts.update(found)
            return new

        new = map_texts(ex, fix)
        totals.update(counts)
        rows_with += bool(counts)
        if policy == "drop" and counts:
            report.drop("pii", ex, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            continue
        kept.append(new if policy == "redact" else ex)
    report.step("pii", n, kept, policy=policy, found=dict(totals), rows_with_pii=rows_with)
    return kept


def _toxicity(examples, c, report: _Report) -> list[Example]:
    from tunesmith.data.toxicity import ToxicityClassifier, load_wordlist, toxic_terms

    words = load_wordlist(c.toxicity_wordlist)
    texts = [joined(ex) for ex in examples]
    scores = ToxicityClassifier(c.toxicity_classifier).score(texts) if c.toxicity_classifier else None
    flagged, kept, n = 0, [], len(examples)
    for i, ex in enumerate(examples):
        terms = toxic_terms(texts[i], words)
        hit = bool(terms) or (scores is not None and scores[i] >= c.toxicity_threshold)
        flagged += hit
        if hit and c.toxicity == "drop":
            detail = f"terms: {', '.join(sorted(set(terms)))}" if terms else f"classifier {scores[i]:.2f}"
            report.drop("toxicity", ex, detail)
            continue
        kept.append(ex)
    report.step("toxicity", n, kept, policy=c.toxicity, rows_flagged=flagged)
    return kept


def _decontaminate(examples, c, report: _Report) -> list[Example]:
    from tunesmith.data.decontam import build_index, find_contamination

    items = {}
    for path in c.decontaminate:  # a missing eval file raises: silently checking nothing is worse
        for ex in load_examples([path], on_error="skip"):
            items[f"{ex.file}:{ex.line}"] = joined(ex)  # full path: two test.jsonl files must not collide
    index = build_index(items, c.ngram)
    hits = dict(find_contamination([joined(ex) for ex in examples], index, c.ngram))
    kept = []
    for i, ex in enumerate(examples):
        if i in hits:
            report.drop("contamination", ex, "eval items " + ", ".join(hits[i][:5]))
        else:
            kept.append(ex)
    report.step("decontaminate", len(examples), kept, eval_items=len(items), ngram=c.ngram,
                contaminated={f"{examples[i].file}:{examples[i].line}": ids for i, ids in list(hits.items())[:200]})
    return kept


def _dedup(examples, c, report: _Report) -> list[Example]:
    from tunesmith.data.dedup import exact_duplicates, near_duplicates

    texts = [json.dumps(to_row(ex), sort_keys=True, ensure_ascii=False) for ex in examples]
    drop = {d: (k, "exact") for d, k in exact_duplicates(texts)}
    if c.dedup == "near":
        plain = [joined(ex) for ex in examples]
        for d, k, sim in near_duplicates(plain, threshold=c.near_threshold):
            drop.setdefault(d, (k, f"near {sim:.2f}"))
    kept = []
    for i, ex in enumerate(examples):
        if i in drop:
            k, how = drop[i]
            report.drop("duplicate", ex, f"{how} of {examples[k].file}:{examples[k].line}")
        else:
            kept.append(ex)
    report.step("dedup", len(examples), kept, method=c.dedup)
    return kept
