"""Parity check: does an exported artefact answer like the trained model (base + adapter)?

The same fixed prompts go through the reference (the run loaded as `tunesmith.inference.load`
loads it) and a candidate (the merged checkpoint, a GGUF file, ...). Two numbers come out:

- greedy_text_agreement: the fraction of prompts whose greedy reply is the identical string;
- top1_agreement: teacher-forced on the reference's own token sequence (prompt + its greedy
  reply), the fraction of reply positions where the candidate's argmax next token equals the
  reference's. Teacher forcing keeps one early near-tie from turning every later position into a
  disagreement, so this number measures the weights, and the text number measures what a user sees.

A candidate is anything with the two methods of `Candidate` below: `HFCandidate` (transformers)
lives here; the GGUF one (llama.cpp through llama-cpp-python) lives in tunesmith/export/gguf.py.
"""

from __future__ import annotations

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

# Thresholds by artefact kind, as (min top-1 agreement, min greedy-text agreement).
# - hf / f32 / f16 / bf16: the merged weights are base + B@A computed once, so only float rounding
#   separates them from the reference (fp32 merge: logits within ~1e-5); an argmax flips only at an
#   exact near-tie, so 0.98 leaves room for one flip in ~50 positions and still catches any real
#   breakage (a wrong template, a missing layer, a mis-merged adapter drop far below it). Greedy
#   text compounds a single flip into a different string, so text allows 1 prompt in 5 to differ.
# - q8_0: 8-bit blocks with a per-block scale keep logits within a few 1e-3: rare flips, same bar.
# - 4-bit and smaller types (q4_k_m, q4_0, ...) really change the weights; flips at near-ties are
#   expected, so top-1 agreement carries the check (0.90) and greedy text is reported, not required:
#   measured on the quickstart adapter (SmolLM2-135M), q4_k_m kept 0.932 top-1 agreement over 117
#   positions and the trained JSON shape, yet 0 of 4 replies were identical (the first invented
#   name token differs, and greedy decoding compounds it). A text bar there would fail every 4-bit
#   export of a small model without telling a broken export from a faithful one.
THRESHOLDS = {"exact": (0.98, 0.8), "q8": (0.98, 0.8), "q4": (0.90, 0.0)}


def thresholds_for(kind: str) -> tuple[float, float]:
    """(min_top1, min_text) for an artefact kind: hf, f16, bf16, f32, q8_0, q4_k_m, q5_k_m, ..."""
    kind = kind.lower()
    if kind.startswith("q8"):
        return THRESHOLDS["q8"]
    if kind.startswith(("q", "iq", "tq")):  # q4_*, q5_*, q6_k, q3_*, q2_k, iq*: sub-8-bit types
        return THRESHOLDS["q4"]
    return THRESHOLDS["exact"]


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

    def next_token_argmax(self, token_ids: list[int]) -> list[int]:
        """One forward pass over `token_ids` (no BOS added); the argmax next-token id at every
        position (len(result) == len(token_ids))."""
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


def reference_outputs(loaded, prompts: list[Prompt], max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """Run the reference (a tunesmith.inference.Loaded: base + adapter) on every prompt.

    Each row: name, prompt, the greedy reply (text and ids), `tokens` = prompt ids + reply ids, the
    index `start` of the first reply position, and `top1`: the reference's argmax next token at the
    teacher-forced positions start-1 ... len(tokens)-2 (the ones that predict the reply)."""
    import torch

    from tunesmith.export.merge import stop_token_ids

    model, tok = loaded.model, loaded.tokenizer
    stops = stop_token_ids(tok, model.generation_config)
    rows = []
    for p in prompts:
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
        top1 = _argmax_all(model, tokens)[start - 1: len(tokens) - 1]
        rows.append({"name": p.name, "prompt": p.text, "reply": tok.decode(reply, skip_special_tokens=True).strip(),
                     "reply_ids": reply, "tokens": tokens, "start": start, "top1": top1,
                     "max_new_tokens": max_new_tokens})
    return rows


def _argmax_all(model, token_ids: list[int]) -> list[int]:
    import torch

    ids = torch.tensor([token_ids])
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return logits[0].argmax(-1).tolist()


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
        ids = tok(prompt_text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        eos = self.model.generation_config.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=max_new,
                                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    def next_token_argmax(self, token_ids: list[int]) -> list[int]:
        return _argmax_all(self.model, token_ids)


# --------------------------------------------------------------------------- comparison


def compare(ref: list[dict], cand: Candidate, *, kind: str = "exact", min_top1: float | None = None,
            min_text: float | None = None) -> dict:
    """Run `cand` on the reference's prompts and score agreement; `passed` against the thresholds
    of `kind` (see THRESHOLDS) unless min_top1 / min_text are given."""
    default_top1, default_text = thresholds_for(kind)
    min_top1 = default_top1 if min_top1 is None else min_top1
    min_text = default_text if min_text is None else min_text
    details, agree, positions, texts = [], 0, 0, 0
    for r in ref:
        text = cand.greedy(r["prompt"], r["max_new_tokens"])
        got = cand.next_token_argmax(r["tokens"])[r["start"] - 1: len(r["tokens"]) - 1]
        if len(got) != len(r["top1"]):
            raise ValueError(f"candidate {cand.name} returned {len(got) + r['start'] - 1} argmax ids for "
                             f"{len(r['tokens'])} tokens (Candidate.next_token_argmax returns one per position)")
        same = [a == b for a, b in zip(got, r["top1"])]
        agree, positions = agree + sum(same), positions + len(same)
        texts += text == r["reply"]
        details.append({"name": r["name"], "text_match": text == r["reply"], "top1_agree": sum(same),
                        "positions": len(same), "first_divergence": same.index(False) if False in same else None,
                        "reference": r["reply"], "candidate": text})
    top1 = agree / positions if positions else 1.0
    text_rate = texts / len(ref) if ref else 1.0
    result = {"candidate": cand.name, "kind": kind, "prompts": len(ref), "positions": positions,
              "top1_agreement": round(top1, 4), "greedy_text_agreement": round(text_rate, 4),
              "thresholds": {"top1_agreement": min_top1, "greedy_text_agreement": min_text},
              "passed": top1 >= min_top1 and text_rate >= min_text, "details": details}
    result["shortfall"] = shortfall(result)
    return result


def shortfall(result: dict) -> str:
    """'' when passed, else which numbers fell short and by how much (for errors and reports)."""
    parts = []
    for key, label in (("top1_agreement", "top-1 next-token agreement"), ("greedy_text_agreement",
                                                                          "greedy-text agreement")):
        value, bar = result[key], result["thresholds"][key]
        if value < bar:
            parts.append(f"{label} {value:.3f} is {bar - value:.3f} below the threshold {bar:.2f}")
    return "; ".join(parts)


def report_md(result: dict | list[dict]) -> str:
    """A markdown report of one comparison or several (one per artefact)."""
    results = result if isinstance(result, list) else [result]
    lines = ["# Export parity", "",
             "Fixed prompts through the trained model (base + adapter) and each exported artefact. "
             "Top-1: teacher-forced on the reference's own reply, the share of positions where both pick the "
             "same next token. Text: the share of prompts whose greedy reply is identical.", "",
             "| artefact | top-1 agreement | greedy-text agreement | positions | prompts | thresholds | result |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["thresholds"]
        verdict = "pass" if r["passed"] else "**FAIL**" + (" (forced)" if r.get("forced") else "")
        lines.append(f"| {r['candidate']} | {r['top1_agreement']:.3f} | {r['greedy_text_agreement']:.3f} | "
                     f"{r['positions']} | {r['prompts']} | top-1 >= {t['top1_agreement']:.2f}, text >= "
                     f"{t['greedy_text_agreement']:.2f} | {verdict} |")
    for r in results:
        if r["shortfall"]:
            lines += ["", f"{r['candidate']}: {r['shortfall']}."]
        lines += ["", f"## {r['candidate']}", "", "| prompt | text | top-1 | first divergence | reference | candidate |",
                  "|---|---|---|---|---|---|"]
        for d in r["details"]:
            div = "" if d["first_divergence"] is None else str(d["first_divergence"])
            lines.append(f"| {d['name']} | {'same' if d['text_match'] else 'differs'} | {d['top1_agree']}/"
                         f"{d['positions']} | {div} | {_cell(d['reference'])} | {_cell(d['candidate'])} |")
    return "\n".join(lines) + "\n"


def _cell(text: str, width: int = 80) -> str:
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(result: dict) -> dict:
    """The headline numbers of one comparison (for manifests and the model card)."""
    return {k: result[k] for k in ("candidate", "kind", "top1_agreement", "greedy_text_agreement", "positions",
                                   "prompts", "thresholds", "passed", "shortfall")} | (
        {"forced": True} if result.get("forced") else {})
