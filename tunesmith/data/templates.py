"""Chat template + loss mask: the one place that turns conversations into token ids and labels.

The model's own chat template renders the conversation. Which tokens carry loss is decided on
the rendered *text*: for each assistant turn i, the span between
    render(messages[:i], add_generation_prompt=True)    and    render(messages[:i+1])
is the reply, ending with the template's end-of-turn token (ChatML: "<|im_end|>"). Trailing
whitespace after that token ("\n" in ChatML) is left untrained, since the model never has to
produce it (generation stops at end-of-turn). Char spans map to tokens through the fast
tokenizer's offsets. This needs no per-template `{% generation %}` markers (trl's
assistant_only_loss does, and most hub templates lack them), only that rendering a longer
conversation extends the shorter one, which we check and report when it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.errors import Problem, fail

IGNORE_INDEX = -100  # label value that cross-entropy skips (PyTorch / transformers convention)


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]


@dataclass
class PrepStats:
    """What tokenization did to the rows; reported by `validate` and written into the run."""

    rows: int = 0
    kept: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    dropped_no_loss: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    lengths: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        ls = sorted(self.lengths) or [0]
        return {
            "rows": self.rows, "kept": self.kept, "dropped_overlong": self.dropped_overlong,
            "truncated": self.truncated, "dropped_no_loss": self.dropped_no_loss, "tokens": self.tokens,
            "loss_tokens": self.loss_tokens,
            "loss_token_fraction": round(self.loss_tokens / self.tokens, 4) if self.tokens else 0.0,
            "length_min": ls[0], "length_median": ls[len(ls) // 2], "length_max": ls[-1],
        }


def _render(tokenizer, messages, add_generation_prompt=False, tools=None) -> str:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                             **({"tools": tools} if tools else {}))
    except TemplateError as e:  # e.g. strict templates: no system role, user/assistant must alternate
        raise ValueError(f"the chat template refused this conversation: {e}") from None


def require_template(tokenizer) -> None:
    if not tokenizer.chat_template:
        raise fail("the model's tokenizer has no chat template (base models often ship none)",
                   "set model.chat_template to a Jinja chat template, e.g. a ChatML one",
                   field="model.chat_template")


def assistant_spans(tokenizer, messages: list[dict], tools=None) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the [start, end) char spans of every assistant reply incl. end-of-turn."""
    text = _render(tokenizer, messages, tools=tools)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        upto = text if i + 1 == len(messages) else _render(tokenizer, messages[: i + 1], tools=tools)
        if not text.startswith(before) or not text.startswith(upto):
            raise ValueError("the chat template does not render conversations incrementally "
                             "(a longer conversation does not extend the shorter one)")
        end = len(upto.rstrip())  # keep end-of-turn, drop the whitespace the model never generates
        for call in m.get("tool_calls") or []:
            name = (call.get("function") or {}).get("name", "") if isinstance(call, dict) else ""
            if name not in text[len(before):end]:
                # Training would teach an empty reply where the data has a tool call.
                raise ValueError(f"the chat template does not render tool calls (assistant turn {i} calls "
                                 f"'{name}' but renders without it)")
        spans.append((len(before), end))
    return text, spans


def _labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Label a token when it starts inside a reply span (tokens never straddle a boundary here:
    the template puts a special token or newline at each turn edge). One pass, spans in order."""
    labels = [IGNORE_INDEX] * len(ids)
    j = 0
    for k, (start, end) in enumerate(offsets):
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        if j == len(spans):
            break
        if end > start and spans[j][0] <= start:
            labels[k] = ids[k]
    return labels


def tokenize_conversation(tokenizer, messages: list[dict], train_on: str = "assistant", tools=None) -> Tokenized:
    """Token ids and labels for one conversation (labels = IGNORE_INDEX where no loss)."""
    if train_on == "all":
        ids = tokenizer(_render(tokenizer, messages, tools=tools), add_special_tokens=False)["input_ids"]
        return Tokenized(ids, list(ids))
    text, spans = assistant_spans(tokenizer, messages, tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return Tokenized(enc["input_ids"], _labels(enc["input_ids"], enc["offset_mapping"], spans))


def tokenize_examples(tokenizer, examples, max_length: int, overlong: str = "drop",
                      train_on: str = "assistant") -> tuple[list[Tokenized], PrepStats, list[Problem]]:
    """Tokenize every example, applying the overlong policy; returns rows, stats and row problems."""
    require_template(tokenizer)
    stats, rows, problems = PrepStats(), [], []
    # Render every conversation first, then tokenize in batches: the fast tokenizer's batch call
    # runs in Rust across cores, several times faster than one call per row.
    rendered = []
    for ex in examples:
        stats.rows += 1
        try:
            tools = ex.extra.get("tools")
            rendered.append((_render(tokenizer, ex.messages, tools=tools), None) if train_on == "all"
                            else assistant_spans(tokenizer, ex.messages, tools))
        except ValueError as e:
            problems.append(Problem(str(e), "set model.chat_template to a template that renders incrementally",
                                    file=ex.file, line=ex.line))
    for b in range(0, len(rendered), 1024):
        chunk = rendered[b:b + 1024]
        enc = tokenizer([text for text, _ in chunk], add_special_tokens=False,
                        return_offsets_mapping=train_on != "all")
        for k, (_, spans) in enumerate(chunk):
            ids = enc["input_ids"][k]
            t = Tokenized(ids, list(ids) if spans is None else _labels(ids, enc["offset_mapping"][k], spans))
            _keep(t, stats, rows, max_length, overlong)
    return rows, stats, problems


def tokenize_text(tokenizer, examples, max_length: int, stride: int | None = None) -> tuple[list[Tokenized], PrepStats]:
    """Raw text for continued pre-training: every document is tokenized with EOS after it, the
    documents are concatenated and cut into max_length windows (`windows` below). No chat
    template and no loss mask: every token is a target once. Concatenating rather than padding each
    document keeps every position a real token, and EOS teaches where documents end."""
    stats = PrepStats()
    stream: list[int] = []
    texts = [ex.extra["text"] for ex in examples]
    for b in range(0, len(texts), 1024):
        for ids in tokenizer(texts[b:b + 1024], add_special_tokens=False)["input_ids"]:
            stats.rows += 1
            stats.kept += 1
            stats.lengths.append(len(ids) + 1)
            stream.extend(ids)
            if tokenizer.eos_token_id is not None:
                stream.append(tokenizer.eos_token_id)
    rows = windows(stream, max_length, stride) if stream else []
    stats.tokens = sum(len(r.input_ids) for r in rows)
    # The model predicts token t+1 from t: a window's first label is never a target (the shift).
    stats.loss_tokens = sum(sum(1 for x in r.labels[1:] if x != IGNORE_INDEX) for r in rows)
    return rows, stats


def _keep(t: Tokenized, stats: PrepStats, rows: list[Tokenized], max_length: int, overlong: str) -> None:
    """Apply the overlong policy and the no-loss check to one row, counting what happens."""
    stats.lengths.append(len(t.input_ids))
    if len(t.input_ids) > max_length:
        if overlong == "drop":
            stats.dropped_overlong += 1
            return
        t = Tokenized(t.input_ids[:max_length], t.labels[:max_length])
        stats.truncated += 1
    n_loss = sum(1 for x in t.labels if x != IGNORE_INDEX)
    if n_loss == 0:  # e.g. truncation cut off every reply: the row would teach nothing
        stats.dropped_no_loss += 1
        return
    stats.kept += 1
    stats.tokens += len(t.input_ids)
    stats.loss_tokens += n_loss
    rows.append(t)


def windows(ids: list[int], max_length: int, stride: int | None = None) -> list[Tokenized]:
    """Raw-text token ids cut into windows of max_length; consecutive windows overlap by
    max_length - stride tokens. The overlap is context only: each token is a target exactly once
    (the evaluation convention of the transformers perplexity guide, applied to training)."""
    stride = stride or max_length
    if not 0 < stride <= max_length:
        raise ValueError(f"stride {stride} must be in 1..max_length ({max_length})")
    out, start, trained_to = [], 0, 0
    while start < len(ids):
        end = min(start + max_length, len(ids))
        chunk = ids[start:end]
        labels = [tok if start + k >= trained_to else IGNORE_INDEX for k, tok in enumerate(chunk)]
        out.append(Tokenized(chunk, labels))
        trained_to = end
        if end == len(ids):
            break
        start += stride
    return out
