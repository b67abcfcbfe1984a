"""Parity check: does an exported artefact answer like the trained model (base + adapter)?

The same fixed prompts go through the reference (the run loaded as `tunesmith.inference.load`
loads it) and a candidate (the merged checkpoint, a GGUF file, ...). The reference's own greedy
reply to each prompt is then fed to both, teacher-forced, and every reply position is compared:

- top1_agreement: the share of positions where the candidate's argmax next token is the
  reference's, with top1_ci95_low, its 95% Wilson lower bound over all positions;
- kl_mean: the mean over positions of KL(reference || candidate) between the two next-token
  distributions, in nats (what llama.cpp's `llama-perplexity --kl-divergence` reports for a
  quantization, there beside "same top p", the same top-1 agreement);
- greedy_text_agreement and first_divergence, for information: the share of prompts whose greedy
  reply is the identical string, and the reply position where a greedy reply first departs.

The gate is top1_ci95_low and kl_mean against thresholds per artefact kind (THRESHOLDS below),
never greedy text: one near-tie early in a reply changes every later token, so over a handful of
prompts the text number went from 0.25 to 0.85 for one and the same faithful q8_0 file, while the
per-position numbers are averages over hundreds of positions and moved by about a hundredth.

A candidate is anything with the two methods of `Candidate` below: `HFCandidate` (transformers)
lives here; the GGUF one (llama.cpp through llama-cpp-python) lives in tunesmith/export/gguf.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# Generic prompts that every export is checked on, besides rows of the run's own data: they cover
# what a user will try first, which the training data may not (a fine-tune on JSON extraction is
# still asked "hello").
PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain in one sentence what a neural network is.",
    "List three prime numbers and say why they are prime.",
)
# Without a chat template (a continued pre-training run on a base model) prompts are raw text.
RAW_PROMPTS = ("The capital of France is", "Once upon a time, in a small village,", "def fibonacci(n):",
               "The three primary colours are")

MAX_NEW_TOKENS = 40  # long enough for a sentence or a JSON record; every prompt costs this many steps twice
# Enough teacher-forced positions for the top-1 interval to mean something: at 300 a candidate
# that agrees everywhere has a 95% lower bound of 0.987 (at 40 only 0.912, under the hf bar). When
# the run's replies are short, more of its rows are taken (up to MAX_RUN_PROMPTS) until there are.
MIN_POSITIONS = 300
MAX_RUN_PROMPTS = 64

# Thresholds by artefact kind: the 95% Wilson lower bound of top-1 agreement must reach
# "top1_ci95_low", and the mean KL(reference || candidate) must stay at or under "kl_mean" (nats).
# Measured on two SmolLM2-135M adapters (the quickstart's, 40 steps, 369 positions over 12 prompts;
# a 6-step one as in tests/unit/export/test_gguf.py, 352 positions), as top-1 / lower bound / KL:
#   hf (fp32 merge), f16   1.000 / 0.989-0.990 / <= 2e-6     bf16    0.997 / 0.984 / 0.00018
#   q8_0                   1.000 / 0.990 / 0.0012 and 0.983 / 0.963 / 0.0025
#   q4_k_m                 0.981 / 0.961 / 0.020  and 0.955 / 0.927 / 0.037
#   q6_k, q5_k_m, q4_0, q3_k_m, q2_k (quickstart): lower bound 0.911-0.981, KL 0.003-0.126
#   the base model without the adapter (a real difference): 0.699 / 0.651 / 1.40 and 0.824 / 0.781 / 0.56
# Greedy text in the same measurements: 0.25-0.75 of the prompts identical for q8_0 (0.83 for bf16),
# however faithful the file (see _first_divergence for why). The bars sit far from both sides: the
# bounds 0.03-0.11 under what faithful files reached and the KL bars 8x (q8_0, q4_k_m) to 2.4x (q2_k)
# above it, while the adapter-less base misses every bar. The smallest embedded model is the worst
# case for quantization (a larger model loses less to the same type). Positions within one reply are
# not independent (disagreements cluster at the invented names and numbers of a few replies), so
# the binomial interval is optimistic; the margins above allow for that.
THRESHOLDS = {"exact": {"top1_ci95_low": 0.95, "kl_mean": 0.002},  # hf, f32, f16, bf16: only float rounding
              "q8": {"top1_ci95_low": 0.90, "kl_mean": 0.02},      # 8-bit blocks: near-lossless
              "q4": {"top1_ci95_low": 0.85, "kl_mean": 0.30}}      # q6_k ... q2_k, iq*: really other weights
CONFIDENCE = 0.95  # of the top-1 interval


def thresholds_for(kind: str) -> dict[str, float]:
    """{"top1_ci95_low": ..., "kl_mean": ...} for an artefact kind: hf, f16, bf16, f32, q8_0, q4_k_m, ..."""
    kind = kind.lower()
    if kind.startswith("q8"):
        return dict(THRESHOLDS["q8"])
    if kind.startswith(("q", "iq", "tq")):  # q4_*, q5_*, q6_k, q3_*, q2_k, iq*: sub-8-bit types
        return dict(THRESHOLDS["q4"])
    return dict(THRESHOLDS["exact"])


@runtime_checkable
class Candidate(Protocol):
    """What the parity check needs from an exported artefact.

    Both methods work on the *reference tokenizer's* ids and text: an export must keep the
    vocabulary (GGUF conversion keeps token ids), and a tokenizer that disagrees shows up as
    disagreement, which is the point.
    """

    name: str

    def greedy(self, prompt_text: str, max_new: int) -> str:
        """Greedy (argmax) continuation of `prompt_text` (chat template already applied, special
        tokens written as text, tokenized without adding BOS), stopping at the artefact's own
        end-of-sequence / end-of-turn tokens or after `max_new` tokens; the decoded reply without
        special tokens, stripped of surrounding whitespace."""
        ...

    def next_token_logits(self, token_ids: list[int]):
        """One forward pass over `token_ids` (no BOS added); the next-token logits at every position
        as a float32 numpy array of shape (len(token_ids), vocabulary size)."""
        ...


@dataclass
class Prompt:
    name: str  # "generic-1", "validation:file.jsonl:12"
    text: str  # exactly what the model sees: the chat template already applied


# --------------------------------------------------------------------------- prompts


def build_prompts(run_dir: str | Path, tokenizer, n_run: int = 8) -> list[Prompt]:
    """The generic prompts plus up to `n_run` prompts from the run's validation rows (then its
    training rows), each rendered with the run's chat template up to the reply."""
    chat = bool(getattr(tokenizer, "chat_template", None))
    out = [Prompt(f"generic-{i + 1}", _render(tokenizer, [{"role": "user", "content": p}]) if chat else p)
           for i, p in enumerate(PROMPTS if chat else RAW_PROMPTS)]
    generic = len(out)
    for ex, split in _run_examples(run_dir) if n_run > 0 else ():
        if len(out) - generic >= n_run:
            break
        text = _example_prompt(ex, tokenizer, chat)
        if text and all(text != p.text for p in out):
            out.append(Prompt(f"{split}:{Path(ex.file).name}:{ex.line}", text))
    return out


def _render(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _run_examples(run_dir: str | Path) -> list:
    """(example, split) pairs of the run's data, validation first; [] when the data is gone."""
    from tunesmith import runs
    from tunesmith.config import load_config
    from tunesmith.data.formats import task_examples
    from tunesmith.data.prepare import load_all
    from tunesmith.errors import TunesmithError

    try:
        cfg = load_config(Path(run_dir) / runs.CONFIG_FILE)
        loaded = load_all(cfg.data, cfg.seed)
    except (TunesmithError, OSError):  # data moved or deleted since training: generic prompts only
        return []
    val = task_examples(loaded.validation, cfg.data.task_prompt)
    train = task_examples(loaded.train, cfg.data.task_prompt)
    return [(e, "validation") for e in val] + [(e, "train") for e in train]


def _example_prompt(ex, tokenizer, chat: bool) -> str | None:
    if ex.messages:
        msgs = list(ex.messages)
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs))
        msgs = msgs[:last]  # the conversation up to the (last) reply the model was trained to give
        if not chat or not any(m["role"] == "user" for m in msgs):
            return None
        try:
            return _render(tokenizer, msgs)
        except Exception:  # noqa: BLE001 - a template that refuses this row (tools, roles): skip the row
            return None
    text = (ex.extra or {}).get("text")
    if isinstance(text, str) and text.strip() and not chat:
        words = text.split()
        return " ".join(words[: max(4, min(24, len(words) // 2))])  # the first half, at most 24 words
    return None


# --------------------------------------------------------------------------- reference side


def reference_outputs(loaded, prompts: list[Prompt], max_new_tokens: int = MAX_NEW_TOKENS, *,
                      min_prompts: int | None = None, min_positions: int = 0) -> list[dict]:
    """Run the reference (a tunesmith.inference.Loaded: base + adapter) on the prompts, in order:
    all of them by default; with `min_prompts`, the first min_prompts and then more only while the
    replies add up to fewer than `min_positions` positions.

    Each row: name, prompt, the greedy reply (text and ids), `tokens` = prompt ids + reply ids, the
    index `start` of the first reply position, `logits`: the reference's next-token logits at the
    teacher-forced positions start-1 ... len(tokens)-2 (the ones that predict the reply; float32,
    one vocabulary-wide row each: 300 positions x 49k vocabulary is ~60 MB), `top1`, their argmax,
    and `reply_chars`: the length of the reply text decoded up to each reply token (to say where a
    candidate's greedy text departs)."""
    import torch

    from tunesmith.export.merge import stop_token_ids

    model, tok = loaded.model, loaded.tokenizer
    stops = stop_token_ids(tok, model.generation_config)
    rows, positions = [], 0
    for p in prompts:
        if min_prompts is not None and len(rows) >= min_prompts and positions >= min_positions:
            break
        ids = tok(p.text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=stops,
                                 pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else stops[0])
        reply = out[0, ids.shape[1]:].tolist()
        # generate pads finished rows; a lone row stops at its first stop token, so cut there.
        cut = next((i + 1 for i, t in enumerate(reply) if t in stops), len(reply))
        reply = reply[:cut]
        tokens = ids[0].tolist() + reply
        start = ids.shape[1]
        logits = _logits_all(model, tokens)[start - 1: len(tokens) - 1]
        positions += len(reply)
        rows.append({"name": p.name, "prompt": p.text, "reply": tok.decode(reply, skip_special_tokens=True).strip(),
                     "reply_ids": reply, "tokens": tokens, "start": start, "logits": logits,
                     "top1": logits.argmax(-1).tolist(), "max_new_tokens": max_new_tokens,
                     "reply_chars": [len(tok.decode(reply[: i + 1], skip_special_tokens=True).lstrip())
                                     for i in range(len(reply))]})
    return rows


def _logits_all(model, token_ids: list[int]):
    import torch

    ids = torch.tensor([token_ids], device=model.device)  # a GPU candidate (export/gpu_quant.py) runs there
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return logits[0].float().cpu().numpy()


# --------------------------------------------------------------------------- candidates


class HFCandidate:
    """A transformers checkpoint folder (what `from_pretrained` loads), decoded the way a plain
    transformers user would: greedy with the checkpoint's own generation_config (its eos ids)."""

    def __init__(self, path_or_model, tokenizer=None, name: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(path_or_model, (str, Path)):
            import torch

            self.model = AutoModelForCausalLM.from_pretrained(path_or_model, dtype=torch.float32).eval()
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(path_or_model)
            self.name = name or f"hf:{Path(path_or_model).name}"
        else:
            self.model, self.tokenizer, self.name = path_or_model.eval(), tokenizer, name or "hf"

    def greedy(self, prompt_text: str, max_new: int) -> str:
        import torch

        tok = self.tokenizer
        ids = tok(prompt_text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.model.device)
        eos = self.model.generation_config.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=max_new,
                                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    def next_token_logits(self, token_ids: list[int]):
        return _logits_all(self.model, token_ids)


# --------------------------------------------------------------------------- comparison


def compare(ref: list[dict], cand: Candidate, *, kind: str = "exact", thresholds: dict | None = None) -> dict:
    """Run `cand` on the reference's prompts and score agreement; `passed` against the thresholds
    of `kind` (see THRESHOLDS), or against `thresholds` ({"top1_ci95_low": .., "kl_mean": ..})."""
    import numpy as np

    from tunesmith.eval.human import wilson_interval

    bars = thresholds_for(kind) | (thresholds or {})
    details, agree, positions, texts, kl_sum = [], 0, 0, 0, 0.0
    for r in ref:
        text = cand.greedy(r["prompt"], r["max_new_tokens"])
        got = np.asarray(cand.next_token_logits(r["tokens"]))[r["start"] - 1: len(r["tokens"]) - 1]
        if got.shape[0] != len(r["top1"]):
            raise ValueError(f"candidate {cand.name} returned {got.shape[0] + r['start'] - 1} logit rows for "
                             f"{len(r['tokens'])} tokens (Candidate.next_token_logits returns one per position)")
        kl = kl_divergence(r["logits"], got)
        same = (got.argmax(-1) == np.asarray(r["top1"])).tolist()
        agree, positions, kl_sum = agree + sum(same), positions + len(same), kl_sum + float(kl.sum())
        texts += text == r["reply"]
        details.append({"name": r["name"], "text_match": text == r["reply"], "top1_agree": sum(same),
                        "positions": len(same), "kl_mean": round(float(kl.mean()), 6) if len(kl) else 0.0,
                        "first_divergence": _first_divergence(r, text), "reference": r["reply"], "candidate": text})
    top1 = agree / positions if positions else 1.0
    # Rounded before the verdict so that the numbers shown are the numbers judged.
    low = round(wilson_interval(top1, positions, CONFIDENCE)[0], 4) if positions else 0.0
    kl_mean = round(kl_sum / positions, 6) if positions else 0.0
    divergences = [d["first_divergence"] for d in details if d["first_divergence"] is not None]
    result = {"candidate": cand.name, "kind": kind, "prompts": len(ref), "positions": positions,
              "top1_agreement": round(top1, 4), "top1_ci95_low": low, "kl_mean": kl_mean,
              "greedy_text_agreement": round(texts / len(ref), 4) if ref else 1.0,
              "first_divergence": min(divergences) if divergences else None, "thresholds": bars,
              "passed": low >= bars["top1_ci95_low"] and kl_mean <= bars["kl_mean"], "details": details}
    result["shortfall"] = shortfall(result)
    return result


def _first_divergence(ref_row: dict, text: str) -> int | None:
    """The reply position (0 = the first reply token) where the candidate's greedy text departs from
    the reference's, None when they are identical. Not the first teacher-forced disagreement: llama.cpp
    decoding one token at a time and llama.cpp scoring a whole sequence in one batch give the same
    file's logits up to ~0.5 apart (measured on a q8_0 SmolLM2), so a near-tie can flip in the text
    while every teacher-forced argmax agrees."""
    if text == ref_row["reply"]:
        return None
    common = len(os.path.commonprefix([ref_row["reply"], text]))
    chars = ref_row["reply_chars"]
    return next((i for i, n in enumerate(chars) if n > common), max(len(chars) - 1, 0))


def kl_divergence(ref_logits, cand_logits):
    """KL(reference || candidate) in nats at each position, from two (positions, vocabulary) logit
    arrays. Computed in float64 from the raw float32 logits so that identical logits give exactly 0
    and an f16 file's ~1e-6 is not lost under rounding. Only the shared part of the vocabulary is
    compared: a converter may pad the vocabulary with never-predicted tokens."""
    import numpy as np

    v = min(ref_logits.shape[-1], cand_logits.shape[-1])
    a, b = _log_softmax(ref_logits[:, :v]), _log_softmax(cand_logits[:, :v])
    return (np.exp(a) * (a - b)).sum(-1)


def _log_softmax(x):
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def shortfall(result: dict) -> str:
    """'' when passed, else which numbers missed their threshold and by how much (for errors and reports)."""
    from tunesmith.eval.human import wilson_interval

    parts, bars, n = [], result["thresholds"], result["positions"]
    if result["top1_ci95_low"] < bars["top1_ci95_low"]:
        part = (f"top-1 next-token agreement {result['top1_agreement']:.3f} over {n} positions has a 95% lower bound "
                f"of {result['top1_ci95_low']:.3f}, {bars['top1_ci95_low'] - result['top1_ci95_low']:.3f} below "
                f"the threshold {bars['top1_ci95_low']:.2f}")
        best = wilson_interval(1.0, n, CONFIDENCE)[0] if n else 0.0
        if best < bars["top1_ci95_low"]:  # too few positions to show anything either way: say so
            part += (f" (the run's replies give only {n} positions, where even full agreement has a lower bound of "
                     f"{best:.3f}: read parity.md and pass --force, or compare more or longer replies with "
                     "tunesmith.export.run.export(..., parity_prompts=, max_new_tokens=))")
        parts.append(part)
    if result["kl_mean"] > bars["kl_mean"]:
        parts.append(f"mean KL divergence {result['kl_mean']:.4f} nats is {result['kl_mean'] - bars['kl_mean']:.4f} "
                     f"above the threshold {bars['kl_mean']:.3g}")
    return "; ".join(parts)


def report_md(result: dict | list[dict]) -> str:
    """A markdown report of one comparison or several (one per artefact)."""
    results = result if isinstance(result, list) else [result]
    lines = ["# Export parity", "",
             "Fixed prompts through the trained model (base + adapter) and each exported artefact, teacher-forced on "
             "the trained model's own greedy replies. Top-1: the share of reply positions where both pick the same "
             "next token, with its 95% (Wilson) lower bound. KL: the mean KL divergence of the artefact's next-token "
             "distribution from the trained model's, in nats. The check passes when the lower bound and the mean KL "
             "meet the artefact's thresholds. For information: greedy text, the share of prompts whose greedy reply "
             "is identical, and first divergence, the earliest reply position where a greedy reply departs.", "",
             "| artefact | top-1 agreement | 95% lower bound | mean KL | positions | prompts | greedy text "
             "| first divergence | thresholds | result |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["thresholds"]
        verdict = "pass" if r["passed"] else "**FAIL**" + (" (forced)" if r.get("forced") else "")
        lines.append(f"| {r['candidate']} | {r['top1_agreement']:.3f} | {r['top1_ci95_low']:.3f} | {r['kl_mean']:.4f} "
                     f"| {r['positions']} | {r['prompts']} | {r['greedy_text_agreement']:.3f} | "
                     f"{_or_none(r['first_divergence'])} | lower bound >= {t['top1_ci95_low']:.2f}, KL <= "
                     f"{t['kl_mean']:.3g} | {verdict} |")
    for r in results:
        if r["shortfall"]:
            lines += ["", f"{r['candidate']}: {r['shortfall']}."]
        lines += ["", f"## {r['candidate']}", "",
                  "| prompt | text | top-1 | mean KL | first divergence | reference | candidate |",
                  "|---|---|---|---|---|---|---|"]
        for d in r["details"]:
            lines.append(f"| {d['name']} | {'same' if d['text_match'] else 'differs'} | {d['top1_agree']}/"
                         f"{d['positions']} | {d['kl_mean']:.4f} | {_or_none(d['first_divergence'])} | "
                         f"{_cell(d['reference'])} | {_cell(d['candidate'])} |")
    return "\n".join(lines) + "\n"


def _or_none(value) -> str:
    return "none" if value is None else str(value)


def _cell(text: str, width: int = 80) -> str:
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(result: dict) -> dict:
    """The headline numbers of one comparison (for manifests and the model card)."""
    return {k: result[k] for k in ("candidate", "kind", "top1_agreement", "top1_ci95_low", "kl_mean", "positions",
                                   "prompts", "greedy_text_agreement", "first_divergence", "thresholds", "passed",
                                   "shortfall")} | (
        {"forced": True} if result.get("forced") else {})
