"""Data pre-flight statistics and previews: what training will actually see, before it runs.

`statistics` answers the questions behind most failed fine-tunes: how many rows survive, how long
they are under the real tokenizer, what the max-length policy does, what share of tokens carries
loss, whether the end-of-turn token is trained (a model that never learns to stop rambles), and
whether rows repeat; `split_report` is one split's part of `tunesmith validate`'s report.
`preview_rows` tokenizes the first rows, which `render_terminal` / `render_html` show with
trained tokens highlighted.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from dataclasses import replace

from tunesmith.data.formats import Example, task_examples
from tunesmith.data.templates import (
    IGNORE_INDEX,
    PrepStats,
    Tokenized,
    tokenize_conversation,
    tokenize_examples,
    tokenize_text,
)


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


def conversation_view(ex: Example) -> list[dict] | None:
    """The conversation a record trains on (None for raw text and classification rows)."""
    if ex.kind == "chat":
        return ex.messages
    if ex.kind == "vision":  # images shown as "[image: name WxH]" in the text
        from tunesmith.data.vision import placeholder_messages

        return placeholder_messages(ex)
    if ex.kind == "preference":
        return ex.messages + ex.extra["chosen"]
    if ex.kind == "kto":
        return ex.messages + ex.extra["completion"]
    return None


def split_report(examples: list[Example], tokenizer, data, kinds: tuple[str, ...] | None) -> dict:
    """One split's summary for `tunesmith validate`: tokenization counts, kinds, template problems
    and `statistics`. `data` is the config's DataConfig section; `kinds` the record kinds the
    recipe trains on (None: any)."""
    if kinds == ("text",):  # continued pre-training: windows over the concatenated documents
        rows, stats = tokenize_text(tokenizer, examples, data.max_length, data.stride)
        return {**stats.summary(), "windows": len(rows), "kinds": {"text": len(examples)}, "template_problems": []}
    if kinds and "chat" in kinds:  # sft: classification rows are text -> label tasks
        examples = task_examples(examples, data.task_prompt)
    convs = [replace(e, messages=conversation_view(e)) for e in examples]
    chats = [e for e in convs if e.messages is not None]
    rows, stats, problems = tokenize_examples(tokenizer, chats, data.max_length, data.overlong,
                                              data.train_on) if chats else ([], PrepStats(), [])
    _add_plain_rows(tokenizer, examples, convs, stats, rows, data.max_length, data.overlong)
    return {**stats.summary(), "kinds": dict(Counter(e.kind for e in examples)),
            "template_problems": [str(p) for p in problems[:20]],
            "statistics": statistics(examples, stats, rows, tokenizer, data.max_length, data.overlong)}


def vision_split_report(examples: list[Example], processor, cfg) -> dict:
    """One split's summary under recipe vlm: every image opened (bad ones raise, at file:line), rows
    tokenized through the model's processor, with the statistics of text rows."""
    from tunesmith.data import vision

    checked = vision.check_images(examples, cfg.vision, cfg.config_path)
    checked.raise_if_errors()
    rows, stats, problems = vision.tokenize_rows(processor, checked.rows, cfg.vision, cfg.data.max_length,
                                                 cfg.data.train_on)
    if problems:
        from tunesmith.errors import TunesmithError

        raise TunesmithError(problems[:50], title=f"{len(problems)} rows could not be tokenized:")
    tokenized = [Tokenized(r["input_ids"], r["labels"]) for r in rows]
    return {**stats.summary(), "kinds": dict(Counter(e.kind for e in examples)), "images": checked.images,
            "images_sha256": checked.sha256, "template_problems": [],
            "statistics": statistics(examples, stats, tokenized, processor.tokenizer, cfg.data.max_length, "drop")}


def _add_plain_rows(tokenizer, examples: list[Example], convs: list[Example], stats: PrepStats,
                    rows: list[Tokenized], max_length: int, overlong: str) -> None:
    """Raw text, classification and prompt rows (no conversation to mask) counted by their length,
    under the same max-length policy, so that the statistics cover every row."""
    for orig, e in zip(examples, convs):
        if e.messages is not None:
            continue
        text = (tokenizer.apply_chat_template(orig.messages, tokenize=False, add_generation_prompt=True)
                if orig.kind == "prompt" else e.extra["text"])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        stats.rows += 1
        stats.lengths.append(len(ids))
        if len(ids) <= max_length or overlong == "truncate":
            stats.kept += 1
            stats.tokens += min(len(ids), max_length)
            rows.append(Tokenized(ids[:max_length], list(ids[:max_length])))
        else:
            stats.dropped_overlong += 1


def preview_rows(examples: list[Example], tokenizer, n: int, train_on: str = "assistant"
                 ) -> tuple[list[Example], list[Tokenized]]:
    """The first `n` records that train on a conversation, and each one tokenized with its loss mask."""
    chats = [replace(e, messages=conversation_view(e)) for e in examples]
    chats = [e for e in chats if e.messages is not None][:n]
    return chats, [tokenize_conversation(tokenizer, e.messages, train_on) for e in chats]


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
