"""Synthetic instruction data: self-instruct generation with a local model, and the gate that
synthetic rows pass before they join real data (dedup, quality, and a cap on their share).

Self-instruct (Wang et al. 2023, "Self-Instruct: Aligning Language Models with Self-Generated
Instructions") shows a model a few seed tasks, asks for a new instruction, then asks the same
model to carry it out. Prompts, parsing labels and filters live in synth.yaml beside this file.
Models small enough to run locally often ignore the requested format, so every reply is parsed
leniently (labels optional, preambles and numbering stripped), and whatever is poor is left to
finalize_synthetic, the one place where synthetic rows are judged.
"""

from __future__ import annotations

import inspect
import math
import random
import re
from collections import Counter
from fractions import Fraction
from functools import cache
from pathlib import Path

from tunesmith.data import augment, clean
from tunesmith.data.augment import Generate
from tunesmith.data.curate import MAX_LISTED, joined
from tunesmith.data.dedup import exact_duplicates, near_duplicates, words
from tunesmith.data.formats import Example
from tunesmith.errors import Collector

__all__ = ["finalize_synthetic", "parse_answer", "parse_task", "self_instruct", "to_examples"]

# A reply line that only names the task ("Task 4", "**New task:**", "4.") and carries no text.
_HEADING = re.compile(r"^\W*(new\s+)?task\s*\d*\W*$|^\W*\d+\W*$", re.IGNORECASE)
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
# "Task 4: Write ...", "Task: Write ...", "Task 4. Write ..." (but not "Task-oriented ...").
_TASK_PREFIX = re.compile(r"^\W*(?:new\s+)?task(?:\s*\d+\s*[:.)\-]|\s*:)\s*", re.IGNORECASE)


@cache
def _config() -> dict:
    import yaml

    raw = yaml.safe_load(Path(__file__).with_name("synth.yaml").read_text(encoding="utf-8"))

    def labels(names: list[str]) -> str:
        return "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in sorted(names, key=len, reverse=True))

    # "Instruction: x", "**Input:** x", "2. Output - x", "Task 4 instruction: x"
    raw["label"] = re.compile(
        rf"^[ \t]*(?:\d+[.)][ \t]*)?\**[ \t]*(?:task\s*\d*\s*)?(?P<name>{labels(raw['instruction_labels'])}"
        rf"|{labels(raw['input_labels'])}|{labels(raw['output_labels'])})[ \t]*\**[ \t]*[:\-][ \t]*\**[ \t]*",
        re.IGNORECASE | re.MULTILINE)
    raw["kind_of"] = {**{n: "instruction" for n in raw["instruction_labels"]},
                      **{n: "input" for n in raw["input_labels"]}, **{n: "output" for n in raw["output_labels"]}}
    raw["blocked"] = re.compile(r"\b(" + labels(raw["blocked_instruction_words"]) + r")\b", re.IGNORECASE)
    return raw


# --------------------------------------------------------------------------- parsing


def _fields(reply: str) -> tuple[str, dict[str, str]]:
    """(text before the first label, {instruction|input|output: text after its first label})."""
    cfg = _config()
    matches = list(cfg["label"].finditer(reply))
    fields: dict[str, str] = {}
    for m, nxt in zip(matches, matches[1:] + [None]):
        kind = cfg["kind_of"][" ".join(m.group("name").lower().split())]
        fields.setdefault(kind, reply[m.end(): nxt.start() if nxt else len(reply)].strip())
    return reply[: matches[0].start()] if matches else reply, fields


def _strip(text: str) -> str:
    text = text.strip().strip("*").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def parse_task(reply: str) -> dict | None:
    """{"instruction", "input"} from a model's reply to the task prompt, or None if it has none.

    With an "Instruction:" label its text is taken (up to the next label); without one, the first
    line that is not a heading such as "Task 4" or a preamble ending in ":". An input that says
    "<noinput>", "none", "N/A" and the like becomes "".
    """
    cfg = _config()
    before, fields = _fields(reply.strip())
    instruction = fields.get("instruction")
    if instruction is None:
        lines = [ln.strip() for ln in before.splitlines() if ln.strip()]
        lines = [ln for ln in lines if not _HEADING.match(ln) and not ln.rstrip("*").endswith(":")]
        instruction = lines[0] if lines else ""
    instruction = _strip(_TASK_PREFIX.sub("", _NUMBERING.sub("", instruction)))
    context = _strip(fields.get("input", ""))
    if context.lower().rstrip(".") in cfg["no_input"]:
        context = ""
    return {"instruction": instruction, "input": context} if instruction else None


def parse_answer(reply: str) -> str:
    """A reply to an instruction, without an "Output:"/"Answer:" label the model may have added."""
    _, fields = _fields(reply.strip())
    text = fields.get("output")
    return _strip(text if text is not None else reply)


def _usable_instruction(instruction: str) -> bool:
    """The self-instruct paper's filters: length in words, no task a text model cannot do, and a
    start with a letter or digit (punctuation first is nearly always a broken reply)."""
    cfg = _config()
    n = len(instruction.split())
    return (cfg["min_instruction_words"] <= n <= cfg["max_instruction_words"] and instruction[:1].isalnum()
            and not cfg["blocked"].search(instruction))


# --------------------------------------------------------------------------- generation


def _seed_task(task: dict) -> dict:
    first = (task.get("instances") or [{}])[0]
    return {"id": task.get("id", ""), "instruction": task["instruction"].strip(),
            "input": (first.get("input") or "").strip(), "output": (first.get("output") or "").strip()}


def _check_args(seed_tasks: list[dict], n: int, num_examples: int, batch_size: int) -> None:
    problems = Collector("self_instruct: bad arguments")
    if not seed_tasks:
        problems.add("no seed tasks", "give at least one {instruction, instances: [{input, output}]}",
                     field="seed_tasks")
    bad = [i for i, t in enumerate(seed_tasks) if not isinstance(t, dict) or not str(t.get("instruction", "")).strip()]
    if bad:
        problems.add(f"seed tasks {bad[:10]} have no instruction", "each needs a non-empty 'instruction'",
                     field="seed_tasks")
    if n < 0:
        problems.add(f"n={n!r} is negative", "ask for 0 or more rows", field="n")
    if num_examples < 1 or batch_size < 1:
        problems.add(f"num_examples={num_examples!r}, batch_size={batch_size!r}", "both must be at least 1")
    problems.raise_if_any()


def _task_prompt(examples: list[dict]) -> str:
    cfg = _config()
    shown = "\n\n".join(cfg["example"].format(number=i + 1, instruction=t["instruction"],
                                              input=t["input"] or "<noinput>") for i, t in enumerate(examples))
    return cfg["task_prompt"].format(examples=shown, next=len(examples) + 1)


def _user_turn(instruction: str, context: str) -> str:
    # The same join as formats' alpaca loader, so the model answers what training will show.
    return f"{instruction}\n\n{context}" if context else instruction


def _new_tasks(shots: list[list[dict]], replies: list[tuple[str, bool]], known: set[str],
               skipped: Counter) -> list[tuple[dict, list[str]]]:
    """The usable (task, ids of the tasks shown) among the replies; `known` grows with them.

    A reply cut off at max_new_tokens is still used when its instruction ended before the cut
    (it usually sits on the first line); an instruction that runs into the cut is half a task.
    """
    tasks = []
    for sample, (reply, cut) in zip(shots, replies):
        task = parse_task(reply)
        if task is None:
            skipped["no_instruction"] += 1
            continue
        key = " ".join(words(task["instruction"]))
        if cut and not task["input"] and " ".join(words(reply)).endswith(key):
            skipped["cut_instruction"] += 1
        elif key in known:
            skipped["repeat"] += 1
        elif f" {key} " in f" {' '.join(words(_task_prompt(sample)))} ":
            skipped["copies_prompt"] += 1  # small models often echo a line ("one new task, different ...")
        elif not _usable_instruction(task["instruction"]):
            skipped["unusable_instruction"] += 1
        else:
            known.add(key)
            tasks.append((task, [t.get("id") or "generated" for t in sample]))
    return tasks


def self_instruct(seed_tasks: list[dict], generate: Generate, *, n: int, seed: int, max_new_tokens: int = 256,
                  batch_size: int = 8, num_examples: int = 3, temperature: float = 0.7,
                  max_rounds: int | None = None, report: dict | None = None) -> list[dict]:
    """Up to `n` new alpaca-style rows {instruction, input, output, synthetic: True, truncated, ...}.

    Each round asks the model (its `generate` function, see augment.Generate; a `description`
    attribute, as inference.Generator has, names it in the rows) for a batch of new instructions, each
    prompt showing `num_examples` tasks sampled from the seeds (one of them from the rows made so
    far, once there are some, as the paper does), then answers the usable ones greedily: the
    instruction needs variety, the answer the model's best guess. Instructions that repeat a
    known one exactly are skipped here; near repeats are left to finalize_synthetic, and so are
    answers cut off at max_new_tokens (marked truncated: True), so that they are counted there.
    Stops after `max_rounds` (default: enough for every prompt to fail about twice), so a model
    that never follows the format ends with fewer rows rather than looping. `report`, if given,
    receives the counts of prompts sent and replies skipped by reason.
    """
    _check_args(seed_tasks, n, num_examples, batch_size)
    rng = random.Random(seed)
    seeds = [_seed_task(t) for t in seed_tasks]
    known = {" ".join(words(t["instruction"])) for t in seeds}
    rows: list[dict] = []
    skipped: Counter = Counter()
    prompts = 0
    rounds = max_rounds if max_rounds is not None else 2 * math.ceil(n / batch_size) + 2
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size)
    for r in range(rounds):
        if len(rows) >= n:
            break
        shots = []
        for _ in range(min(batch_size, n - len(rows))):
            sample = rng.sample(seeds, min(num_examples, len(seeds)))
            if rows and len(sample) > 1:
                sample[-1] = rng.choice(rows)
            shots.append(sample)
        prompts += len(shots)
        replies = augment.generate_replies(generate, [_task_prompt(s) for s in shots], temperature=temperature,
                                           seed=seed * 1000 + r, **kw)
        tasks = _new_tasks(shots, replies, known, skipped)
        answers = augment.generate_replies(generate, [_user_turn(t["instruction"], t["input"]) for t, _ in tasks],
                                           temperature=0.0, seed=seed, **kw)
        for (task, shown), (answer, cut) in zip(tasks, answers):
            answer = parse_answer(answer)
            if not answer:
                skipped["empty_answer"] += 1
            elif len(rows) < n:
                rows.append({**task, "output": answer, "synthetic": True, "truncated": cut,
                             "generator": getattr(generate, "description", ""), "shown": shown})
    if report is not None:
        report.update({"prompts": prompts, "rows": len(rows), "skipped": dict(skipped)})
    return rows


def to_examples(rows: list[dict], file: str = "<self-instruct>") -> list[Example]:
    """Alpaca-style rows as chat Examples with extra["synthetic"] = True.

    Rows are converted as they are, not validated: finalize_synthetic is where empty or broken
    ones are dropped, and counted.
    """
    out = []
    for i, row in enumerate(rows):
        messages = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
            {"role": "user", "content": _user_turn(str(row.get("instruction") or "").strip(),
                                                   str(row.get("input") or "").strip())},
            {"role": "assistant", "content": str(row.get("output") or "")}]
        extra = {"synthetic": True, **{k: row[k] for k in ("generator", "shown") if k in row}}
        if row.get("truncated"):
            extra["truncated"] = True
        out.append(Example(messages, file, i + 1, "chat", extra))
    return out


# --------------------------------------------------------------------------- the gate


def _prompt_and_answer(ex: Example) -> tuple[str, str | None]:
    """What the row asks and what it teaches to answer (None where the kind has no answer text)."""
    prompt = "\n".join(m.get("content") or "" for m in ex.messages or [] if m.get("role") == "user")
    if ex.kind == "classification":
        return ex.extra.get("text", ""), None
    if ex.kind == "text":
        return "", None
    if ex.kind == "chat":
        replies = [m for m in ex.messages or [] if m.get("role") == "assistant"]
    else:  # preference: the chosen side; kto: the completion
        replies = ex.extra.get("chosen") or ex.extra.get("completion") or []
    return prompt, (replies[-1].get("content") or "") if replies else ""


def _echoes(prompt: str, answer: str) -> bool:
    """The answer repeats the prompt, or a piece of it, instead of answering."""
    p, a = " ".join(words(prompt)), " ".join(words(answer))
    if not a or not p:
        return False
    return a in p or (p in a and len(a.split()) - len(p.split()) < 3)


def _answer_reason(ex: Example) -> str:
    """Why a row's prompt or answer is unusable, or ""."""
    prompt, answer = _prompt_and_answer(ex)
    if ex.kind != "text" and not prompt.strip():
        return "empty_prompt"
    if answer is None:
        return ""
    if not answer.strip():
        return "empty_answer"
    if ex.extra.get("truncated"):  # stopped at the generation limit, mid-sentence
        return "truncated_answer"
    tokens = words(answer)
    # No letter or digit at all, or one word said over and over ("the the the the the").
    if not tokens or (len(tokens) >= 5 and len(set(tokens)) / len(tokens) < 0.2):
        return "degenerate_answer"
    if _echoes(prompt, answer):
        return "echoes_prompt"
    head = answer[:200].lower().replace("’", "'")
    if any(phrase in head for phrase in _config()["refusals"]):
        return "refusal"
    return ""


def _max_synthetic(real: int, max_fraction: float) -> int | None:
    """The most synthetic rows s with s / (real + s) <= max_fraction (None: no limit).

    s <= f * real / (1 - f), in exact fractions so that 0.3 of a final set is not lost to float
    rounding: 100 real rows at 0.3 allow 42 (42/142 = 0.296, 43/143 = 0.301).
    """
    if max_fraction >= 1:
        return None
    f = Fraction(max_fraction).limit_denominator(10**9)
    return math.floor(f * real / (1 - f))


def _check_finalize(max_fraction: float, quality: dict, dedup: str) -> None:
    problems = Collector("finalize_synthetic: bad arguments")
    if not 0.0 <= max_fraction <= 1.0:
        problems.add(f"max_fraction={max_fraction!r} is outside [0, 1]", "use e.g. 0.3", field="max_fraction")
    known = set(inspect.signature(clean.quality_reasons).parameters) - {"text"}
    for key in sorted(set(quality) - known):
        problems.add(f"unknown quality setting {key!r}", f"use some of {', '.join(sorted(known))}",
                     field=f"quality.{key}")
    if dedup not in ("near", "exact"):
        problems.add(f"dedup={dedup!r}", "use 'near' or 'exact'", field="dedup")
    problems.raise_if_any()


def _duplicates(real: list[Example], rows: list[Example], dedup: str, near_threshold: float) -> dict[int, str]:
    """{index in rows: duplicate_of_real | duplicate}. Real rows come first, so a synthetic row
    that repeats a real one is always the one reported. A row counts as a duplicate when its whole
    text, or its prompt alone, repeats an earlier row's: the same question with another answer
    would teach two answers to one question."""
    n = len(real)
    everything = real + rows
    found: dict[int, int] = {}
    for texts in ([joined(ex) for ex in everything], [_prompt_and_answer(ex)[0] for ex in everything]):
        for d, k in exact_duplicates(texts):
            if d >= n and texts[d].strip():
                found.setdefault(d - n, k)
    if dedup == "near":
        for d, k, _ in near_duplicates([joined(ex) for ex in everything], threshold=near_threshold):
            if d >= n:
                found.setdefault(d - n, k)
    return {i: "duplicate_of_real" if k < n else "duplicate" for i, k in found.items()}


def finalize_synthetic(real: list[Example], synthetic: list[Example], *, max_fraction: float = 0.3, seed: int,
                       quality: dict | None = None, dedup: str = "near", near_threshold: float = 0.8
                       ) -> tuple[list[Example], dict]:
    """Real rows plus the synthetic rows that pass, capped at `max_fraction` of the result.

    Order, and why: quality first (clean.quality_reasons with `quality` as its settings, plus
    empty, cut-off, degenerate, echoing and refusing answers), then dedup against the real rows and the
    synthetic rows kept so far (exact, and MinHash near-duplicates unless dedup="exact"), then
    the cap, by a seeded random sample: a poor row dropped first can never "keep" a duplicate
    that would then be lost too. Augmented copies are meant to be close to their source, so a
    light perturbation may count as a near duplicate; use dedup="exact" to keep those.
    Returns (real + kept synthetic, report with counts by reason and the first rows of each).
    """
    quality = dict(quality or {})
    _check_finalize(max_fraction, quality, dedup)
    dropped: Counter = Counter()
    listed: dict[str, list[str]] = {}

    def drop(reason: str, ex: Example) -> None:
        dropped[reason] += 1
        rows = listed.setdefault(reason, [])
        if len(rows) < MAX_LISTED:
            rows.append(f"{ex.file}:{ex.line}")

    passed = []
    for ex in synthetic:
        reason = _answer_reason(ex)
        if not reason:
            reasons = clean.quality_reasons(joined(ex), **quality)
            reason = f"quality:{reasons[0]}" if reasons else ""
        if reason:
            drop(reason, ex)
        else:
            passed.append(ex)
    dups = _duplicates(real, passed, dedup, near_threshold)
    unique = []
    for i, ex in enumerate(passed):
        if i in dups:
            drop(dups[i], ex)
        else:
            unique.append(ex)
    cap = _max_synthetic(len(real), max_fraction)
    keep = set(range(len(unique)))
    if cap is not None and len(unique) > cap:
        keep = set(random.Random(seed).sample(range(len(unique)), cap))
    kept = []
    for i, ex in enumerate(unique):
        if i in keep:
            kept.append(Example(ex.messages, ex.file, ex.line, ex.kind, {**ex.extra, "synthetic": True}))
        else:
            drop("over_cap", ex)
    final = list(real) + kept
    report = {"real": len(real), "generated": len(synthetic), "kept": len(kept), "dropped": dict(dropped),
              "max_fraction": max_fraction, "max_synthetic": cap,
              "synthetic_fraction": round(len(kept) / len(final), 4) if final else 0.0,
              "dropped_rows": listed, "settings": {"quality": quality, "dedup": dedup,
                                                   "near_threshold": near_threshold, "seed": seed}}
    return final, report
