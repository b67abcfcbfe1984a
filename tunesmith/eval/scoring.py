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

# A batch of packed rows holds at most batch_size x TOKENS_PER_ROW tokens (batch_size counts rows of
# the one-row-per-input layout, as the suite's batch_size always has). Measured on 2 cores, SmolLM2:
# fp32 throughput is flat from ~1,000 tokens per forward up; bf16 (AMX) gains up to ~3,000.
TOKENS_PER_ROW = 128


@dataclass
class Request:
    """One continuation to score: which unique input row, and which of its last positions."""

    row: int
    targets: list[int]


@dataclass
class Pack:
    """Rows that share a prefix, as one packed row: the prefix once, then each row's suffix.

    `segment` is 0 on the prefix and k on the k-th suffix; `positions` restart after the prefix for
    each suffix, so every token sits where it would in its own row. `reads` maps a row to the packed
    indexes of the positions whose logits score its continuation."""

    ids: list[int]
    segment: list[int]
    positions: list[int]
    reads: dict[int, list[int]]


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


def _requests(tok, pairs, max_length: int):
    """Unique model inputs, one request per pair, and the inputs grouped by the context they came from."""
    rows: dict[tuple[int, ...], int] = {}
    requests: list[Request] = []
    groups: dict[tuple[int, ...], list[int]] = {}
    for context, continuation in pairs:
        ctx, cont = _encode(tok, context, continuation)
        if not cont:
            raise ValueError(f"continuation {continuation!r} encodes to no tokens")
        ids = (ctx + cont)[-(max_length + 1):]
        inp = tuple(ids[:-1])  # the last token is only ever a target
        row = rows.setdefault(inp, len(rows))
        requests.append(Request(row, cont))
        members = groups.setdefault(tuple(ctx), [])
        if row not in members:
            members.append(row)
    return list(rows), requests, groups


def loglikelihoods(model, tok, pairs: list[tuple[str, str]], batch_size: int = 16,
                   max_length: int = 2048) -> list[float]:
    """Sum of log-probabilities of each continuation given its context.

    The options of one question share their context, so it runs through the model once: one packed
    row [context, option 1, option 2, ...] whose attention mask lets each option see the context
    and itself only, with position ids that restart after the context for each option (HellaSwag's
    four endings cost about half the tokens of four full rows). Identical inputs run once (MMLU's
    single-token " A".." D" share one row). Only the positions that predict a continuation token go
    through the LM head. `batch_size` is in rows of the one-row-per-input layout: a batch holds about
    batch_size x 128 tokens.

    Written by hand: lm-eval's HFLM reuses a context only across single-token options, and
    transformers has no prefix-sharing scorer. `loglikelihoods_reference` is the plain one-row-per-
    input computation this must equal (tests/unit/eval/test_scoring.py)."""
    import torch

    from tunesmith.hardware import recheck_threads

    if getattr(getattr(model, "config", None), "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        # flash-attention kernels take no custom (tree) mask: one row per input instead
        return loglikelihoods_reference(model, tok, pairs, batch_size, max_length)
    rows, requests, groups = _requests(tok, pairs, max_length)
    need = [0] * len(rows)  # how many final positions of each row some request reads
    for r in requests:
        need[r.row] = max(need[r.row], len(r.targets))
    packs = [_pack(rows, need, members) for members in groups.values()]
    logprobs: list = [None] * len(rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    # The mask is added to attention scores in the hidden states' dtype: the embeddings' (a 4-bit
    # base keeps float embeddings; its first parameter may be uint8).
    dtype = model.get_input_embeddings().weight.dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    model.eval()
    with torch.inference_mode():
        for batch in _token_batches(packs, batch_size * TOKENS_PER_ROW):
            recheck_threads()  # follow other processes' load between batches (see hardware.py)
            ids, mask, positions, keep = _packed_inputs(batch, pad, dtype)
            logits = _last_logits(model, ids, mask, keep, positions)
            for k, pack in enumerate(batch):
                start = keep - len(pack.ids)  # packed index j is logits column start + j (left padding)
                for row, where in pack.reads.items():
                    if logprobs[row] is None:  # a row in two groups (same input, other context) is scored once
                        logprobs[row] = torch.log_softmax(logits[k, [start + j for j in where]].float(), dim=-1)
    return _sum_targets(requests, logprobs)


def _pack(rows: list[tuple[int, ...]], need: list[int], members: list[int]) -> Pack:
    """The members' longest common prefix, then each member's remaining tokens."""
    first = rows[members[0]]
    p = len(first)
    for m in members[1:]:
        row = rows[m]
        p = min(p, len(row))
        p = next((i for i in range(p) if row[i] != first[i]), p)
    ids, segment, positions = list(first[:p]), [0] * p, list(range(p))
    reads = {}
    for k, m in enumerate(members, start=1):
        row = rows[m]
        offset = len(ids)
        ids += row[p:]
        segment += [k] * (len(row) - p)
        positions += range(p, len(row))
        # Depth d of the row is packed index d inside the prefix, offset + d - p after it.
        reads[m] = [d if d < p else offset + d - p for d in range(len(row) - need[m], len(row))]
    return Pack(ids, segment, positions, reads)


def _token_batches(packs: list[Pack], budget: int):
    """Longest first (an out-of-memory shows at once), about `budget` tokens each. A batch also
    closes early, once it holds a quarter of the budget, before a row shorter than 80% of its
    first: the shorter row's left padding would be work thrown away (~20% of HellaSwag's tokens
    in 64-item samples with one fixed budget)."""
    order = sorted(packs, key=lambda q: -len(q.ids))
    b = 0
    while b < len(order):
        width = len(order[b].ids)
        n = 1
        while b + n < len(order) and (n + 1) * width <= budget:
            if len(order[b + n].ids) < 0.8 * width and n * width >= budget // 4:
                break
            n += 1
        yield order[b:b + n]
        b += n


def _packed_inputs(batch: list[Pack], pad: int, dtype):
    """Left-padded ids, the tree attention mask (additive, [batch, 1, width, width]), position ids,
    and how many final columns hold every position some row reads."""
    import torch

    width = len(batch[0].ids)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    segment = torch.full((len(batch), width), -1, dtype=torch.long)  # -1: padding
    for k, pack in enumerate(batch):
        ids[k, width - len(pack.ids):] = torch.tensor(pack.ids)
        positions[k, width - len(pack.ids):] = torch.tensor(pack.positions)
        segment[k, width - len(pack.ids):] = torch.tensor(pack.segment)
    query, key = segment[:, :, None], segment[:, None, :]
    # A token sees the earlier tokens of the shared prefix and of its own suffix; padding sees only
    # itself (a query row with nothing to attend to would turn into NaN in softmax).
    allowed = torch.ones(width, width, dtype=torch.bool).tril() & (key >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
    keep = max(len(q.ids) - min(j for js in q.reads.values() for j in js) for q in batch)
    return ids, mask, positions, keep


def _sum_targets(requests: list[Request], logprobs: list) -> list[float]:
    import torch

    out = []
    for r in requests:
        lp = logprobs[r.row]
        tail = lp[lp.shape[0] - len(r.targets):]
        out.append(float(tail.gather(1, torch.tensor(r.targets)[:, None]).sum()))
    return out


def loglikelihoods_reference(model, tok, pairs: list[tuple[str, str]], batch_size: int = 16,
                             max_length: int = 2048) -> list[float]:
    """The same numbers as `loglikelihoods`, one left-padded row per unique input (the code before
    prefix sharing): the tests' yardstick and bench/mc_throughput.py's "before" arm."""
    import torch

    from tunesmith.hardware import recheck_threads

    inputs, requests, _ = _requests(tok, pairs, max_length)
    need = [0] * len(inputs)
    for r in requests:
        need[r.row] = max(need[r.row], len(r.targets))
    logprobs: list = [None] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))  # similar lengths, little padding
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            recheck_threads()
            idx = order[b:b + batch_size]
            width = len(inputs[idx[0]])
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for k, i in enumerate(idx):
                ids[k, width - len(inputs[i]):] = torch.tensor(inputs[i])
                mask[k, width - len(inputs[i]):] = 1
            keep = max(need[i] for i in idx)
            logits = _last_logits(model, ids, mask, keep, (mask.cumsum(-1) - 1).clamp(min=0))
            for k, i in enumerate(idx):
                logprobs[i] = torch.log_softmax(logits[k, keep - need[i]:].float(), dim=-1)
    return _sum_targets(requests, logprobs)


def _last_logits(model, ids, mask, keep: int, positions):
    """Logits of the last `keep` positions of a left-padded batch. Left padding lines every row's
    last positions up at the right edge, so the LM head (a vocab x hidden matmul per position, ~20%
    of SmolLM2's compute) runs on those positions only."""
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
