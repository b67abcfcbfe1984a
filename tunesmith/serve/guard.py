"""Guarded serving: `tunesmith serve --guard input,output [--guard-config guard.yaml]`.

Input stage, before the model runs: every chat message of the screened roles (or every completion
prompt) goes through a blocklist, the toxicity scorer of tunesmith/data/toxicity.py (word list,
optional local classifier) and prompt-injection heuristics (guard.yaml beside this file, also
applied to base64 blobs decoded from the text). A blocked prompt never reaches the model: its
choices answer with the refusal text and finish_reason "content_filter", as OpenAI's API does.

Output stage, on what the model writes: PII (tunesmith/data/pii.py) is redacted, and a toxic reply
is cut before the toxic span and finishes with "content_filter". Streamed and non-streamed replies
go through the same OutputFilter, so both give the same text.

Every decision is one line on the `tunesmith.guard` logger: request id, stage, choice, action,
rule or PII type names with counts. Never the text.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

from tunesmith.data.pii import PiiMatch, find_pii, pii_types, redact
from tunesmith.data.toxicity import ToxicityClassifier, load_wordlist, toxic_terms
from tunesmith.errors import Collector, fail

TABLE_FILE = Path(__file__).with_name("guard.yaml")
log = logging.getLogger("tunesmith.guard")

STAGES = ("input", "output")
INPUT_SCREENS = ("blocklist", "toxicity", "injection")
OUTPUT_SCREENS = ("pii", "toxicity")
ROLES = ("system", "user", "assistant")

# Streaming output (OutputFilter). Text is released once no PII match can still change it: every
# PII pattern that may hold whitespace (phone, card, IBAN, IPv6) is under HOLD characters long, and
# the others (email) hold none, so a cut just after whitespace at least HOLD characters from the
# end never splits a match that could still grow. A run with no whitespace is cut anyway once it is
# LONG characters (a base64 blob must not hold the whole reply back). CONTEXT characters before the
# cut are searched again, for the look-behinds of the PII patterns.
HOLD, LONG, CONTEXT = 64, 256, 8
SENTENCE_MAX = 400  # the classifier scores sentences; one with no end is scored at this length
SENTENCE_END = re.compile(r"[.!?;。！？]+(?=\s)|\n")
ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}")


def _f(default: Any, help: str) -> Any:
    """A config field with its help text (mutable defaults through default_factory)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    if isinstance(default, type):
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


# --------------------------------------------------------------------------- the config tree


@dataclass(frozen=True)
class ToxicityConfig:
    wordlist: bool = _f(True, "Flag the words and phrases of a word list (whole words, case-insensitive).")
    wordlist_file: str | None = _f(None, "A word list (.txt, one per line, or a YAML/JSON list) that replaces the "
                                   "shipped tunesmith/data/toxic_words.yaml; relative to this file.")
    classifier: str | None = _f(None, "Folder of a local sequence-classification model (save_pretrained) that "
                                "scores toxicity; null: the word list only. Nothing is downloaded.")
    threshold: float = _f(0.5, "Classifier score (0 to 1) at or above which a text is toxic.")
    label: str | None = _f(None, "The classifier's toxic label; null: label 1 of a binary model, or 'toxic'.")


@dataclass(frozen=True)
class BlocklistConfig:
    terms: list[str] = _f([], "Words or phrases refused in input (whole words, case-insensitive, plural s).")
    file: str | None = _f(None, "A file of more terms: .txt one per line ('#' comments) or a YAML/JSON list; "
                          "relative to this file.")


@dataclass(frozen=True)
class InjectionRule:
    name: str = _f("", "What the log calls this rule.")
    regex: str = _f("", "Python regex, searched case-insensitively in the normalised text.")
    chat_only: bool = _f(False, "Only in chat messages (a completion prompt is the client's own template).")


@dataclass(frozen=True)
class InjectionConfig:
    roles: list[str] = _f(["user"], "Chat roles screened for injection. Not system by default: an operator's "
                          "system prompt may well say 'never reveal your system prompt'.")
    disable: list[str] = _f([], "Names of shipped rules (tunesmith/serve/guard.yaml) to turn off.")
    add: list[InjectionRule] = _f([], "More rules: {name, regex, chat_only}.")
    base64: bool = _f(True, "Also screen the text of base64 blobs (24+ characters) that decode to text.")


@dataclass(frozen=True)
class InputConfig:
    screens: list[str] = _f(list(INPUT_SCREENS), "Input screens to run: blocklist, toxicity, injection.")
    roles: list[str] = _f(["system", "user"], "Chat roles screened by the blocklist and toxicity (a developer "
                          "message is a system one). Completion prompts are always screened.")
    on_block: Literal["refuse", "error"] = _f(
        "refuse", "refuse: HTTP 200, the refusal text as the reply, finish_reason content_filter (OpenAI's shape); "
        "error: HTTP 400 with code content_filter.")
    blocklist: BlocklistConfig = _f(BlocklistConfig, "The blocklist screen.")
    toxicity: ToxicityConfig = _f(ToxicityConfig, "The toxicity screen of input.")
    injection: InjectionConfig = _f(InjectionConfig, "The prompt-injection screen.")


@dataclass(frozen=True)
class PiiConfig:
    types: list[str] = _f([], "PII types to redact (email, phone, credit_card, iban, ip, us_ssn); empty: all.")
    style: Literal["tag", "mask"] = _f("tag", "tag: '[EMAIL]'; mask: one '*' per character.")


@dataclass(frozen=True)
class OutputConfig:
    screens: list[str] = _f(list(OUTPUT_SCREENS), "Output screens to run: pii, toxicity.")
    pii: PiiConfig = _f(PiiConfig, "Redaction of personal data in replies.")
    toxicity: ToxicityConfig = _f(ToxicityConfig, "The toxicity screen of replies: the reply stops before the "
                                  "toxic span and finishes with content_filter.")


@dataclass(frozen=True)
class GuardConfig:
    stages: list[str] = _f(list(STAGES), "Stages to run: input, output. `--guard` replaces this.")
    refusal: str = _f("Sorry, I can't help with that request.", "The reply to a blocked input.")
    input: InputConfig = _f(InputConfig, "Screening of what clients send.")
    output: OutputConfig = _f(OutputConfig, "Screening of what the model writes.")


# --------------------------------------------------------------------------- loading


@cache
def shipped_rules() -> tuple[InjectionRule, ...]:
    import yaml

    table = yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8"))
    return tuple(InjectionRule(r["name"], r["regex"], bool(r.get("chat_only", False))) for r in table["injection"])


def _unknown(value: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), list(known), n=1, cutoff=0.5)
    return (f"did you mean '{close[0]}'? " if close else "") + f"use {', '.join(known)}"


def parse_stages(stages: str | list[str]) -> list[str]:
    """`--guard input,output` as a list, every name checked."""
    names = [s.strip() for s in (stages.split(",") if isinstance(stages, str) else stages) if s.strip()]
    for s in names:
        if s not in STAGES:
            raise fail(f"unknown guard stage '{s}'", _unknown(s, STAGES), field="--guard")
    if not names:
        raise fail("--guard names no stage", "use --guard input, --guard output or --guard input,output")
    return names


def load_guard(config: str | Path | None = None, stages: str | list[str] | None = None) -> Guard | None:
    """The guard for `--guard STAGES` and `--guard-config FILE` (None when neither is given).

    The file gives the settings (GuardConfig); `stages` replaces its `stages`. Every problem in the
    file is reported at once, each with its line."""
    if config is None and stages is None:
        return None
    cfg, base, lines, file = GuardConfig(), Path.cwd(), {}, None
    if config is not None:
        from tunesmith.config_build import build, read_yaml

        path = Path(config)
        raw, lines = read_yaml(path)
        file, base = str(path), path.resolve().parent
        errors = Collector(title=f"{file}: invalid guard config:")
        cfg = build(GuardConfig, raw, "", errors, lines, file)
        errors.raise_if_any()
        _check(cfg, base, lines, file)
    if stages is not None:
        cfg = replace(cfg, stages=parse_stages(stages))
    return Guard(cfg, base) if cfg.stages else None


def _check(cfg: GuardConfig, base: Path, lines: dict[str, int], file: str) -> None:
    """Values that have the right type but are not valid, all at once."""
    errors = Collector(title=f"{file}: invalid guard config:")

    def names(key: str, values: list[str], known) -> None:
        for i, v in enumerate(values):
            if v not in known:
                errors.add(f"unknown name '{v}'", _unknown(v, known), file=file, field=key,
                           line=lines.get(f"{key}[{i}]", lines.get(key)))

    def path(key: str, value: str | None, folder: bool = False) -> None:
        if value is not None and not ((base / value / "config.json").is_file() if folder else (base / value).is_file()):
            what = "a model folder with config.json" if folder else "a file"
            errors.add(f"{value} is not {what}", "paths are relative to the guard config's folder",
                       file=file, field=key, line=lines.get(key))

    names("stages", cfg.stages, STAGES)
    names("input.screens", cfg.input.screens, INPUT_SCREENS)
    names("output.screens", cfg.output.screens, OUTPUT_SCREENS)
    names("input.roles", cfg.input.roles, ROLES)
    names("input.injection.roles", cfg.input.injection.roles, ROLES)
    names("input.injection.disable", cfg.input.injection.disable, [r.name for r in shipped_rules()])
    names("output.pii.types", cfg.output.pii.types, pii_types())
    if not cfg.refusal.strip():
        errors.add("the refusal text is empty", "write the sentence a blocked request gets", file=file,
                   field="refusal", line=lines.get("refusal"))
    path("input.blocklist.file", cfg.input.blocklist.file)
    for stage in ("input", "output"):
        tox = getattr(cfg, stage).toxicity
        path(f"{stage}.toxicity.wordlist_file", tox.wordlist_file)
        path(f"{stage}.toxicity.classifier", tox.classifier, folder=True)
        if not 0.0 <= tox.threshold <= 1.0:
            errors.add(f"threshold {tox.threshold} is not between 0 and 1", "use e.g. 0.5", file=file,
                       field=f"{stage}.toxicity.threshold", line=lines.get(f"{stage}.toxicity.threshold"))
    taken = {r.name for r in shipped_rules()}
    for i, rule in enumerate(cfg.input.injection.add):
        key = f"input.injection.add[{i}]"
        where = {"file": file, "line": lines.get(f"{key}.regex", lines.get(key))}
        if not rule.name or rule.name in taken:
            errors.add(f"rule name {rule.name!r} is empty or already taken", "give each rule a new name",
                       field=f"{key}.name", **where)
        taken.add(rule.name)
        try:
            re.compile(rule.regex or "(", re.IGNORECASE)  # an empty regex would match every text
        except re.error as e:
            problem = f"not a valid regex: {e}" if rule.regex else "the regex is empty"
            errors.add(problem, "write a Python regular expression", field=f"{key}.regex", **where)
    errors.raise_if_any()


class _Toxicity:
    """One stage's toxicity screen: the word list and/or a classifier with its threshold."""

    def __init__(self, cfg: ToxicityConfig, base: Path, classifiers: dict):
        self.words = (load_wordlist(str(base / cfg.wordlist_file)) if cfg.wordlist_file else None)
        self.use_words, self.threshold = cfg.wordlist, cfg.threshold
        self.classifier = None
        if cfg.classifier:
            key = (str((base / cfg.classifier).resolve()), cfg.label)
            if key not in classifiers:  # input and output share one model in memory
                classifiers[key] = ToxicityClassifier(key[0], label=cfg.label)
            self.classifier = classifiers[key]

    def terms(self, text: str) -> int:
        return len(toxic_terms(text, self.words)) if self.use_words else 0

    def toxic(self, texts: list[str]) -> list[bool]:
        return [s >= self.threshold for s in self.classifier.score(texts)] if self.classifier and texts else []


# --------------------------------------------------------------------------- the guard


def normalize(text: str) -> str:
    """What the input screens read: NFKC (full-width and ligature look-alikes become plain
    letters), zero-width characters removed, every run of whitespace one space."""
    return " ".join(ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).split())


def decoded_blobs(text: str, limit: int = 16) -> list[str]:
    """The text inside base64 blobs of `text` (standard or URL-safe alphabet), where a blob decodes
    to UTF-8 that is mostly printable; binary data (an image, a key) is skipped."""
    out = []
    for m in BASE64_BLOB.finditer(text):
        blob = m.group().rstrip("=").replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if raw and sum(c.isprintable() or c in "\n\t" for c in raw) >= 0.9 * len(raw):
            out.append(raw)
            if len(out) >= limit:
                break
    return out


class Guard:
    """The guard of one server, built once from a GuardConfig; paths resolve against `base`."""

    def __init__(self, cfg: GuardConfig, base: Path = Path(".")):
        self.cfg, self.refusal = cfg, cfg.refusal
        self.input_on, self.output_on = "input" in cfg.stages, "output" in cfg.stages
        self.on_block = cfg.input.on_block
        inp, out, classifiers = cfg.input, cfg.output, {}
        terms = list(inp.blocklist.terms)
        if inp.blocklist.file:
            terms += sorted(load_wordlist(str(base / inp.blocklist.file)))
        self.blocklist = set(terms) if "blocklist" in inp.screens else set()
        self.in_tox = _Toxicity(inp.toxicity, base, classifiers) if "toxicity" in inp.screens else None
        rules = [r for r in shipped_rules() if r.name not in inp.injection.disable] + list(inp.injection.add)
        self.rules = ([(r.name, re.compile(r.regex, re.IGNORECASE), r.chat_only) for r in rules]
                      if "injection" in inp.screens else [])
        self.pii_types = (list(out.pii.types) or None) if "pii" in out.screens else False
        self.pii_style = out.pii.style
        self.out_tox = _Toxicity(out.toxicity, base, classifiers) if "toxicity" in out.screens else None
        # A classifier's forward pass must not stall the event loop: output chunks then go through a thread.
        self.slow_output = bool(self.out_tox and self.out_tox.classifier)

    # ----------------------------------------------------------------- input

    def _hits(self, text: str, chat: bool, screen: bool, inject: bool) -> Counter:
        """Rule names found in one (normalised) text: blocklist and word list when `screen`,
        injection rules when `inject`; then the same for its decoded base64 blobs."""
        hits: Counter = Counter()
        if screen and self.blocklist:
            hits["blocklist"] += len(toxic_terms(text, self.blocklist))
        if screen and self.in_tox:
            hits["toxicity.wordlist"] += self.in_tox.terms(text)
        if inject:
            for name, regex, chat_only in self.rules:
                if chat or not chat_only:
                    hits[f"injection.{name}"] += len(regex.findall(text))
        return +hits

    def screen_input(self, prompts: list, chat: bool, rid: str) -> list[bool]:
        """Which prompts are blocked (a chat request is one prompt: its messages). Logs the decision;
        with on_block: error, raises the 400 instead."""
        from tunesmith.serve.schema import APIError

        if not self.input_on:
            return [False] * len(prompts)
        inp = self.cfg.input
        found, to_score = [], []  # per prompt: Counter; (prompt index, text) for the classifier
        for i, prompt in enumerate(prompts):
            parts = ([(m["role"], m["content"]) for m in prompt] if chat else [(None, prompt)])
            hits: Counter = Counter()
            for role, raw in parts:
                text = normalize(raw)
                screen = role is None or role in inp.roles
                inject = bool(self.rules) and (role is None or role in inp.injection.roles)
                hits += self._hits(text, chat, screen, inject)
                if inject and inp.injection.base64:
                    for blob in decoded_blobs(text):
                        hits += Counter({f"base64.{k}": v for k, v in self._hits(normalize(blob), chat, True,
                                                                                 True).items()})
                if screen and self.in_tox and self.in_tox.classifier and text:
                    to_score.append((i, text))
            found.append(hits)
        for (i, _), toxic in zip(to_score, self.in_tox.toxic([t for _, t in to_score]) if to_score else []):
            found[i]["toxicity.classifier"] += int(toxic)
        blocked = [bool(+h) for h in found]
        total = sum(found, Counter())
        log.info("request=%s stage=input action=%s blocked=%d/%d%s", rid, "block" if any(blocked) else "pass",
                 sum(blocked), len(prompts), _counts(" rules=", total))
        if any(blocked) and self.on_block == "error":
            raise APIError(400, f"the request was refused by this server's content guard (request {rid})",
                           param="messages" if chat else "prompt", code="content_filter")
        return blocked

    # ----------------------------------------------------------------- output

    async def screen_events(self, events, rows: list, rid: str):
        """A job's events ((choice, "text", str) and (choice, "done", (reason, tokens))) with each
        generated choice's text through its OutputFilter. A choice stopped for toxicity stops
        generating at its next token (its max_tokens drops to 0, so the backend still reports the
        exact number of tokens it made) and finishes with content_filter."""
        from starlette.concurrency import run_in_threadpool

        filters = {i: OutputFilter(self) for i, r in enumerate(rows) if r.prompt is not None and self.output_on}
        async for i, kind, value in events:
            f = filters.get(i)
            if f is None:  # a refused choice (its text is the refusal), or no output stage
                yield i, kind, value
                continue
            if kind == "text":
                out = await run_in_threadpool(f.push, value) if self.slow_output else f.push(value)
                if f.stopped:
                    rows[i].sampling.max_tokens = 0
            else:
                out = await run_in_threadpool(f.finish) if self.slow_output else f.finish()
            if out:
                yield i, "text", out
            if kind == "done":
                reason, tokens = value
                f.log(rid, i, tokens)
                yield i, "done", ("content_filter" if f.stopped else reason, tokens)


def _counts(prefix: str, counts: Counter) -> str:
    return prefix + ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) if counts else ""


class OutputFilter:
    """One choice's generated text on its way to the client: PII redacted, toxic text cut.

    push(piece) takes the next piece of generated text and returns what may go out now (redacted);
    finish() returns the rest. Text is held back only while a PII match or a toxic phrase could
    still form across what has not been generated yet (see HOLD); the concatenated output equals
    what the same filter gives for the whole text in one piece."""

    def __init__(self, guard: Guard):
        self.types, self.style, self.tox = guard.pii_types, guard.pii_style, guard.out_tox
        self.text = ""  # everything generated so far
        self.sent = 0  # characters of `text` already released
        self.scored = 0  # characters of `text` the classifier has passed
        self.stopped = False
        self.rule: str | None = None  # what stopped the reply
        self.pii: Counter = Counter()

    def push(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        return self._release(self._cut(), final=False)

    def finish(self) -> str:
        if self.stopped:
            return ""
        return self._release(len(self.text), final=True)

    def log(self, rid: str, choice: int, tokens: int) -> None:
        action = "block" if self.stopped else "redact" if self.pii else "pass"
        log.info("request=%s stage=output choice=%d action=%s tokens=%d%s%s", rid, choice, action, tokens,
                 f" rules={self.rule}:1" if self.rule else "", _counts(" pii=", self.pii))

    def _cut(self) -> int:
        """How far text may go out, before PII and toxicity have their say: just after the last
        whitespace at least HOLD characters from the end."""
        limit = len(self.text) - HOLD
        if limit <= self.sent:
            return self.sent
        for k in range(limit - 1, max(self.sent, limit - LONG) - 1, -1):
            if self.text[k].isspace():
                return k + 1
        return limit if limit - self.sent >= LONG else self.sent

    def _release(self, cut: int, final: bool) -> str:
        text, sent = self.text, self.sent
        stop = self._toxic_start(final)
        if stop is not None:  # nothing from the toxic span on is ever sent
            cut, final, self.stopped = max(stop, sent), True, True
        elif self.tox and self.tox.classifier and not final:
            cut = min(cut, self.scored)
        matches: list[PiiMatch] = []
        if self.types is not False:
            ctx = max(0, sent - CONTEXT)
            found = find_pii(text[ctx:cut if final else len(text)], self.types)
            matches = [PiiMatch(m.type, m.start + ctx, m.end + ctx, m.text) for m in found]
            if not final:
                for m in matches:  # a match the cut would split waits whole for the next release
                    if m.start < cut < m.end:
                        cut = m.start
                        break
            matches = [m for m in matches if m.end > sent and m.start < cut]
        if cut <= sent:
            return ""
        # A match starting before `sent` is possible only inside a run of LONG characters without
        # whitespace; its unsent part is still redacted.
        local = [PiiMatch(m.type, max(m.start, sent) - sent, min(m.end, cut) - sent, "") for m in matches]
        self.pii.update(m.type for m in local)
        self.sent = cut
        return redact(text[sent:cut], local, self.style) if local else text[sent:cut]

    def _toxic_start(self, final: bool) -> int | None:
        """Where the reply must stop: the start of the first toxic term (word list) among complete
        words, or of the first toxic sentence (classifier); None while all is clean."""
        if self.tox is None:
            return None
        text, sent = self.text, self.sent
        settled = len(text) if final else _after_last_space(text, sent)
        stop = None
        if self.tox.use_words and settled > sent:
            a = max(0, sent - 1)  # one character before: the word list's look-behind sees it
            if toxic_terms(text[a:settled], self.tox.words):
                stop, self.rule = _term_start(text, a, settled, self.tox.words), "toxicity.wordlist"
        if self.tox.classifier is not None:
            bad = self._score_sentences(stop if stop is not None else len(text), final or stop is not None)
            if bad is not None:
                stop, self.rule = bad, "toxicity.classifier"
        return stop

    def _score_sentences(self, end: int, final: bool) -> int | None:
        """Score the sentences completed in text[scored:end] (all of it when `final`); the start of
        the first toxic one, else None with `scored` moved past them."""
        text, start = self.text, self.scored
        ends = [m.end() for m in SENTENCE_END.finditer(text, start, end)]
        last = ends[-1] if ends else start
        if final and end > last:
            ends.append(end)
        elif end - last > SENTENCE_MAX:  # no sentence end in sight: score what there is up to a space
            ends.append(_after_last_space(text, last, end) if _after_last_space(text, last, end) > last else end)
        spans = [(a, b) for a, b in zip([start] + ends[:-1], ends) if text[a:b].strip()]
        for (a, b), toxic in zip(spans, self.tox.toxic([text[a:b] for a, b in spans])):
            if toxic:
                return a
            self.scored = b
        if ends:
            self.scored = max(self.scored, ends[-1])
        return None


def _after_last_space(text: str, start: int, end: int | None = None) -> int:
    """Just after the last whitespace in text[start:end], or `start` when it has none."""
    end = len(text) if end is None else end
    for k in range(end - 1, start - 1, -1):
        if text[k].isspace():
            return k + 1
    return start


def _term_start(text: str, a: int, b: int, words: set[str] | None) -> int:
    """Where the first list term in text[a:b] begins (the start of the whitespace-separated word it
    begins in). toxic_terms tells which terms occur, not where: the first word whose end completes
    a term, then the latest word start from which that term is still found."""
    spans = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
    for k, (_, e) in enumerate(spans):
        if toxic_terms(text[a:e], words):
            for j in range(k, -1, -1):
                if toxic_terms(text[spans[j][0]:e], words):
                    return spans[j][0]
    return a
