"""Model scoring without generation: log-likelihood of continuations and perplexity of text.

Log-likelihood scoring follows lm-evaluation-harness's conventions so that numbers are comparable
with it: a context's trailing whitespace moves onto the continuation, the continuation's tokens are
read off the tokenization of context + continuation, and the model sees at most max_length tokens
(the left is cut, never the continuation). We do it here rather than through lm-eval because lm-eval
fetches its tasks from the hub (see docs/evaluation.md for the adapter that uses it when it can).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Request:
    """One continuation to score: which unique input row, and which of its last positions."""

    row: int
    targets: list[int]


def _encode(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    # "The cat" + " sat" and "The cat " + "sat" must score the same tokens: BPE tokenizers glue a
    # leading space to the next word, so the space belongs to the continuation.
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    # Merges across the boundary can make the joint tokenization differ from ctx's; cutting the
    # whole at len(ctx) keeps the continuation's tokens exactly as the model would see them.
    cont = whole[len(ctx):] if whole[:len(ctx)] == ctx else tok(continuation, add_special_tokens=False)["input_ids"]
    if not ctx:  # nothing to condition on: start from the BOS (or EOS) token, as lm-eval does
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ctx = [prefix]
    return ctx, cont


def loglikelihoods(model, tok, pairs: list[tuple[str, str]], batch_size: int = 16,
                   max_length: int = 2048) -> list[float]:
    """Sum of log-probabilities of each continuation given its context.

    Identical model inputs are run once: multiple-choice items whose options are single tokens
    (MMLU's " A".." D") share the input `context` and need one forward for all four."""
    import torch

    rows: dict[tuple[int, ...], int] = {}
    requests: list[Request] = []
    for context, continuation in pairs:
        ctx, cont = _encode(tok, context, continuation)
        if not cont:
            raise ValueError(f"continuation {continuation!r} encodes to no tokens")
        ids = (ctx + cont)[-(max_length + 1):]
        inp = tuple(ids[:-1])  # the last token is only ever a target
        requests.append(Request(rows.setdefault(inp, len(rows)), cont))
    inputs = list(rows)
    need = [0] * len(inputs)  # how many final positions of each row some request reads
    for r in requests:
        need[r.row] = max(need[r.row], len(r.targets))

    logprobs: list[torch.Tensor | None] = [None] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))  # similar lengths, little padding
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    from tunesmith.hardware import recheck_threads

    model.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            recheck_threads()  # follow other processes' load between batches (see hardware.py)
            idx = order[b:b + batch_size]
            width = len(inputs[idx[0]])
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for k, i in enumerate(idx):
                # Left padding lines every row's last positions up at the right edge, so the LM head
                # (a vocab x hidden matmul per position, ~20% of SmolLM2's compute) runs on the last
                # `keep` positions only. Position ids follow the mask, as in generate().
                ids[k, width - len(inputs[i]):] = torch.tensor(inputs[i])
                mask[k, width - len(inputs[i]):] = 1
            keep = max(need[i] for i in idx)
            logits = _last_logits(model, ids, mask, keep)
            for k, i in enumerate(idx):
                logprobs[i] = torch.log_softmax(logits[k, keep - need[i]:].float(), dim=-1)
    out = []
    for r in requests:
        lp = logprobs[r.row]
        tail = lp[lp.shape[0] - len(r.targets):]
        out.append(float(tail.gather(1, torch.tensor(r.targets)[:, None]).sum()))
    return out


def _last_logits(model, ids, mask, keep: int):
    """Logits of the last `keep` positions of a left-padded batch."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep)
    except TypeError:  # a model class without logits_to_keep (older remote code): compute all, slice
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions)
    return out.logits[:, -keep:]


def perplexity(model, tok, texts: list[str], max_length: int = 1024, stride: int | None = None,
               batch_size: int = 4) -> dict:
    """Perplexity of raw text: the documents (EOS between them) are cut into max_length windows;
    with a stride, windows overlap and the overlap is context only, so every token is scored once
    (the transformers perplexity guide's method). Also bits per byte, which tokenizers cannot game."""
    from tunesmith.data.templates import windows

    stream: list[int] = []
    for ids in tok(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        if tok.eos_token_id is not None:
            stream.append(tok.eos_token_id)
    if len(stream) < 2:
        raise ValueError("the text has fewer than 2 tokens; perplexity needs something to predict")
    chunks = windows(stream, max_length, stride)
    nll, count = masked_nll(model, tok, chunks, batch_size)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    mean = nll / count
    return {"eval_loss": mean, "perplexity": math.exp(mean), "bits_per_byte": nll / math.log(2) / n_bytes,
            "tokens": count}


def masked_nll(model, tok, rows, batch_size: int = 4) -> tuple[float, int]:
    """Summed negative log-likelihood and count of the target tokens of tokenized rows (labels of
    IGNORE_INDEX are context only: a chat row's prompt, a window's overlap)."""
    import torch

    from tunesmith.data.templates import IGNORE_INDEX

    nll, count = 0.0, 0
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].input_ids))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[b:b + batch_size]]
            width = max(len(c.input_ids) for c in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for k, c in enumerate(batch):
                ids[k, :len(c.input_ids)] = torch.tensor(c.input_ids)
                labels[k, :len(c.labels)] = torch.tensor(c.labels)
                mask[k, :len(c.input_ids)] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=IGNORE_INDEX, reduction="sum")
            nll += float(loss)
            count += int((target != IGNORE_INDEX).sum())
    return nll, count


def conversation_loss(model, tok, rows, batch_size: int = 4) -> dict:
    """Held-out loss of chat/instruction rows on the reply tokens only, the training loss's mask."""
    nll, count = masked_nll(model, tok, rows, batch_size)
    if not count:
        raise ValueError("no reply tokens to score")
    return {"eval_loss": nll / count, "perplexity": math.exp(nll / count), "tokens": count}
