"""Data pre-flight statistics and previews: what training will actually see, before it runs.

`statistics` answers the questions behind most failed fine-tunes: how many rows survive, how long
they are under the real tokenizer, what the max-length policy does, what share of tokens carries
loss, whether the end-of-turn token is trained (a model that never learns to stop rambles), and
whether rows repeat. `render_terminal` / `render_html` show tokenized rows with trained tokens
highlighted.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter

from tunesmith.data.templates import IGNORE_INDEX, tokenize_conversation


def _fingerprint(ex) -> str:
    body = json.dumps([ex.messages, ex.extra], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def histogram(lengths: list[int], bins: int = 10) -> list[dict]:
    """Equal-width token-length bins: [{"from", "to", "count"}]."""
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    width = max(1, -(-(hi - lo + 1) // bins))
    counts = Counter((n - lo) // width for n in lengths)
    return [{"from": lo + i * width, "to": lo + (i + 1) * width - 1, "count": counts.get(i, 0)}
            for i in range(-(-(hi - lo + 1) // width))]


def end_of_turn_ids(tokenizer) -> set[int]:
    """Tokens that end an assistant turn: EOS and the template's end-of-turn token when it has one."""
    ids = {tokenizer.eos_token_id}
    probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    t = tokenize_conversation(tokenizer, probe)
    trained = [i for i, lab in zip(t.input_ids, t.labels) if lab != IGNORE_INDEX]
    if trained:
        ids.add(trained[-1])  # what the template puts right after the reply
    return ids - {None}


def statistics(examples: list, tokenized_stats, tokenized_rows: list, tokenizer, max_length: int,
               overlong: str) -> dict:
    """Statistics over loaded examples and their tokenized form (see module docstring)."""
    fingerprints = Counter(_fingerprint(e) for e in examples)
    duplicates = sum(c - 1 for c in fingerprints.values())
    blank = Counter()
    for e in examples:
        for m in e.messages or []:
            if isinstance(m.get("content"), str) and not m["content"].strip() and not m.get("tool_calls"):
                blank[m["role"]] += 1
    eot = end_of_turn_ids(tokenizer) if tokenizer.chat_template else set()
    ends_trained = sum(1 for r in tokenized_rows
                       if any(lab in eot for lab in r.labels if lab != IGNORE_INDEX))
    s = tokenized_stats.summary()
    return {
        "rows": len(examples),
        "duplicates": duplicates,
        "blank_fields": dict(blank),
        "token_lengths": {"min": s["length_min"], "median": s["length_median"], "max": s["length_max"],
                          "histogram": histogram(tokenized_stats.lengths)},
        "over_max_length": {"max_length": max_length, "policy": overlong,
                            "dropped": s["dropped_overlong"], "truncated": s["truncated"],
                            "dropped_no_loss": s["dropped_no_loss"]},
        "loss_token_fraction": s["loss_token_fraction"],
        "end_of_turn_trained": {"rows": ends_trained, "of": len(tokenized_rows),
                                "tokens": sorted(tokenizer.convert_ids_to_tokens(sorted(eot))) if eot else []},
    }


def _segments(tokenizer, row) -> list[tuple[str, bool]]:
    """(text, trained) runs of one tokenized row, merged for readable output."""
    out: list[tuple[str, bool]] = []
    for tok_id, lab in zip(row.input_ids, row.labels):
        text, trained = tokenizer.decode([tok_id]), lab != IGNORE_INDEX
        if out and out[-1][1] == trained:
            out[-1] = (out[-1][0] + text, trained)
        else:
            out.append((text, trained))
    return out


def render_terminal(tokenizer, rows: list, examples: list) -> str:
    """ANSI text: trained tokens in bold green, the rest dim."""
    parts = []
    for ex, row in zip(examples, rows):
        parts.append(f"\033[1m── {ex.file}:{ex.line}  ({len(row.input_ids)} tokens, "
                     f"{sum(lab != IGNORE_INDEX for lab in row.labels)} trained)\033[0m")
        parts.append("".join(f"\033[1;32m{t}\033[0m" if trained else f"\033[2m{t}\033[0m"
                             for t, trained in _segments(tokenizer, row)))
    return "\n".join(parts) + "\n"


def render_html(tokenizer, rows: list, examples: list) -> str:
    """A self-contained HTML page: trained tokens highlighted, special tokens boxed."""
    items = []
    for ex, row in zip(examples, rows):
        body = "".join(f'<span class="{"t" if trained else "c"}">{html.escape(t)}</span>'
                       for t, trained in _segments(tokenizer, row))
        n_trained = sum(lab != IGNORE_INDEX for lab in row.labels)
        items.append(f"<section><h2>{html.escape(ex.file)}:{ex.line} <small>{len(row.input_ids)} tokens, "
                     f"{n_trained} trained</small></h2><pre>{body}</pre></section>")
    return ("<!doctype html><meta charset=utf-8><title>tunesmith data preview</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
            "pre{white-space:pre-wrap;background:#f6f6f6;padding:1em;border-radius:6px;line-height:1.5}"
            ".t{background:#c8f7c5;color:#0a4d08;font-weight:600}.c{color:#666}"
            "h2{font-size:1em}small{color:#666;font-weight:normal}</style>"
            "<h1>Data preview</h1><p><span class=t>highlighted</span> tokens carry loss; grey ones are "
            "context only.</p>" + "".join(items))
