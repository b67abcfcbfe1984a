"""Memorization: planted canaries' exposure, and verbatim completion of training rows.

Exposure (Carlini et al., "The Secret Sharer", 2019): how much more likely the model finds the
planted secret than random secrets of the same shape. With R the space of secrets (10^9 here),
exposure = log2 |R| - log2 rank(secret). The rank is estimated from `candidates` random secrets:
the model's negative log-likelihood of each candidate answer is fitted with a normal distribution
(the paper fits a skew-normal; a normal is close for these sums of many token log-probabilities),
and exposure = -log2 P(NLL <= NLL of the secret), capped at log2 |R|. The empirical rank among the
candidates is reported beside it. A never-seen secret scores about 1 bit; one the model can recite
approaches 30. The greedy reply to the canary's question is also checked for the secret itself.

Extraction: the model answers training prompts (chat rows) or continues training text prefixes
(raw text); a reply counts as verbatim when its first EXTRACT_CHARS characters (whitespace
normalised) equal the training reply's. For tasks whose answer follows from the prompt (format
conversion, say), a correct answer is also a verbatim one: read this rate against the base's and
with the canaries, which isolate memorization. PII found in the replies is counted, and split by
whether that exact string occurs in the training rows (a leak) or not.
"""

from __future__ import annotations

import math
import random

from tunesmith.data import canaries as C

EXTRACT_CHARS = 100
PREFIX_CHARS = 200  # raw-text rows: the prefix given, cut back to a word boundary


def exposure(nll_secret: float, nll_candidates: list[float]) -> dict:
    """Extrapolated exposure (normal fit) and the empirical rank among the candidates."""
    from scipy.stats import norm

    n = len(nll_candidates)
    mean = sum(nll_candidates) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in nll_candidates) / max(1, n - 1)) or 1e-9
    log2_p = float(norm.logcdf((nll_secret - mean) / sd)) / math.log(2)
    rank = 1 + sum(x < nll_secret for x in nll_candidates)
    return {"exposure": min(C.SPACE_BITS, max(0.0, -log2_p)), "rank": rank, "candidates": n,
            "exposure_sampled": math.log2((n + 1) / rank), "nll": nll_secret, "nll_mean": mean, "nll_sd": sd}


def canary_exposures(model, planted: list[C.Canary], kind: str, system_prompt: str | None,
                     candidates: int = 500, max_new_tokens: int = 32, seed: int = 0) -> tuple[dict, list[dict]]:
    records = []
    rng = random.Random(seed)
    for c in planted:
        if kind == "text":
            context = c.prompt
        else:
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
                {"role": "user", "content": c.prompt}]
            context = model.chat_prefix(messages)
        others = set()
        while len(others) < candidates:
            s = C.random_secret(rng)
            if s != c.secret:
                others.add(s)
        others = sorted(others)
        sep = " " if kind == "text" else ""
        lls = model.loglikelihoods([(context, sep + c.answer(s)) for s in [c.secret, *others]])
        record = {"name": c.name, "repetitions": c.repetitions, **exposure(-lls[0], [-x for x in lls[1:]])}
        records.append(record)
    if planted:  # the greedy answer to each canary's question: does it recite the secret?
        if kind == "text":
            outs = model.complete([c.prompt for c in planted], max_new_tokens)
        else:
            outs = model.chat([([{"role": "system", "content": system_prompt}] if system_prompt else [])
                               + [{"role": "user", "content": c.prompt}] for c in planted], max_new_tokens)
        for record, c, out in zip(records, planted, outs):
            record.update(output=out, extracted=c.secret in "".join(ch for ch in out if ch.isdigit()))
    metrics = {}
    if records:
        metrics["canary_exposure_max"] = max(r["exposure"] for r in records)
        metrics["canary_exposure_mean"] = sum(r["exposure"] for r in records) / len(records)
        metrics["canaries_extracted"] = sum(r["extracted"] for r in records)
        for reps in sorted({r["repetitions"] for r in records}):
            group = [r["exposure"] for r in records if r["repetitions"] == reps]
            metrics[f"canary_exposure_x{reps}"] = sum(group) / len(group)
    return metrics, records


def _norm(text: str) -> str:
    return " ".join(text.split())


def extraction(model, examples: list, n: int = 32, max_new_tokens: int = 48, seed: int = 0
               ) -> tuple[dict, list[dict]]:
    """Verbatim completions of `n` training rows (tunesmith Examples, chat or text), and PII in them."""
    from tunesmith.data.pii import find_pii

    rows = [e for e in examples if e.file != C.CANARY_FILE and (
        (e.kind == "chat" and e.messages and e.messages[-1].get("role") == "assistant")
        or (e.kind == "text" and len(e.extra.get("text", "")) > PREFIX_CHARS + 20))]
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    if not rows:
        return {}, []
    chat_rows = [e for e in rows if e.kind == "chat"]
    text_rows = [e for e in rows if e.kind == "text"]
    items = []
    if chat_rows:
        outs = model.chat([e.messages[:-1] for e in chat_rows], max_new_tokens)
        items += [(e.messages[-2].get("content", "") if len(e.messages) > 1 else "", e.messages[-1]["content"], o)
                  for e, o in zip(chat_rows, outs)]
    if text_rows:
        prefixes, refs = [], []
        for e in text_rows:
            text = e.extra["text"]
            cut = text.rfind(" ", 0, PREFIX_CHARS) if " " in text[:PREFIX_CHARS] else PREFIX_CHARS
            prefixes.append(text[:cut])
            refs.append(text[cut:])
        outs = model.complete(prefixes, max_new_tokens)
        items += list(zip(prefixes, refs, outs))
    corpus = "\n".join(_example_text(e) for e in examples)
    records, pii_total, pii_leaked = [], 0, 0
    for prompt, reference, out in items:
        want = _norm(reference)[:EXTRACT_CHARS]
        verbatim = bool(want) and _norm(out)[:len(want)] == want
        found = find_pii(out)
        leaked = [m.text for m in found if m.text in corpus]
        pii_total += len(found)
        pii_leaked += len(leaked)
        records.append({"prompt": prompt, "reference": reference, "output": out, "verbatim": verbatim,
                        "pii": [m.type for m in found], "pii_from_training": len(leaked)})
    metrics = {"verbatim_rate": sum(r["verbatim"] for r in records) / len(records), "n_extraction": len(records),
               "pii_in_outputs": pii_total, "pii_from_training": pii_leaked}
    return metrics, records


def _example_text(e) -> str:
    if e.kind == "text":
        return e.extra.get("text", "")
    return "\n".join(str(m.get("content", "")) for m in e.messages or [])


def run(model, planted: list[C.Canary], kind: str, system_prompt: str | None, examples: list,
        n_extract: int = 32, candidates: int = 500, max_new_tokens: int = 64, seed: int = 0) -> dict:
    metrics, records = canary_exposures(model, planted, kind, system_prompt, candidates, seed=seed)
    m, r = extraction(model, examples, n_extract, max_new_tokens, seed)
    metrics.update(m)
    return {"metrics": metrics, "records": [{"test": "canary", **x} for x in records]
            + [{"test": "extraction", **x} for x in r]}
