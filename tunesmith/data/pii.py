"""Find, count and redact personal data (PII) in training text: emails, phone numbers, payment
cards, IBANs, IP addresses and US social security numbers.

The regexes and word lists live in pii_patterns.yaml beside this file; this module adds what a
regex cannot do: checksums (Luhn for cards, ISO 13616 mod-97 for IBANs), address validation (the
stdlib `ipaddress`), digit counts, context words, and choosing one match where two types overlap.
What counts as each type, span for span, is tests/corpus/pii/CONVENTION.md; tests/corpus/pii/*.jsonl
are labelled sets that tests/unit/data/test_pii_quality.py scores this module on.

Context words follow the idea of Microsoft Presidio's context enhancers (a word such as "phone"
near a candidate raises it), without its machinery: a few forms are reported only after their label
word (a bare 10-digit run is a phone after "call", a code anywhere else), and some words veto a
candidate ("version 1.2.3.4" is no IP address, "invoice 0123456789" no phone), the nearer word
winning when both stand before it.

Libraries looked at: Presidio needs spaCy models (a download at run time, which tunesmith never
does), and `phonenumbers` parses well but only with a default region per text, while training data
mixes countries; patterns plus checksums and context words catch the formats that matter here.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tunesmith.errors import Collector, fail

PATTERNS_FILE = Path(__file__).with_name("pii_patterns.yaml")
POLICIES = ("redact", "drop", "report")
STYLES = ("tag", "mask")
# How far a window of context words may reach, in characters: several words, never a paragraph.
_BEFORE_CHARS, _AFTER_CHARS = 100, 40
# The units that word lists are written in and distances counted in: words, and the symbols that
# stand for one ("SS#", "§ 2.1", "5 €").
_TOKEN = re.compile(r"\w+|[#§€$£%]")
# A veto word in an earlier sentence or line says nothing about this number ("my order. Call ...").
# A "." counts only with a word after it: "invoice no. 0123456789" is one phrase.
_SENTENCE_BREAK = re.compile(r"[!?;\n]|\.\s+\w")


@dataclass(frozen=True)
class PiiMatch:
    """One piece of PII: its type (e.g. "email") and the [start, end) span of `text` in the input."""

    type: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Pattern:
    type: str
    regex: re.Pattern
    digits: tuple[int, int] | None
    validate: str
    label: str | None = None  # the type's label word list
    needs_label: bool = False
    veto: tuple[str, ...] = ()
    veto_after: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Words:
    """A word list of pii_patterns.yaml, checked word by word over a window of a few words (one
    regex over the window's text, with a hundred alternatives, was the slow part of find_pii)."""

    single: re.Pattern  # fullmatches one word that is an entry by itself ("tel", "telefon\w*")
    phrases: tuple[tuple[re.Pattern, tuple[str, ...]], ...]  # (last word, the words before it)
    window: int

    def ends_at(self, tokens: list[str], i: int) -> bool:
        """Whether an entry of the list ends with tokens[i]."""
        if self.single.fullmatch(tokens[i]):
            return True
        return any(last.fullmatch(tokens[i]) and i >= len(before) and tuple(tokens[i - len(before):i]) == before
                   for last, before in self.phrases)


# --------------------------------------------------------------------------- validators
# Each takes a regex candidate and returns how many of its leading characters are PII
# (normally all of them), or None to drop it. Cards and IBANs may keep less: see _card, _iban.


def _luhn_ok(digits: str) -> bool:
    """Payment card check digit: doubling every second digit from the right, the sum ends in 0."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(candidate: str) -> int | None:
    """The longest run of whole space-separated groups (13-19 digits) that passes Luhn.

    Whole groups only, so "4111 1111 1111 1111 123" (card and CVV) keeps the card, while an
    unbroken or dash-joined run of digits is all or nothing.
    """
    # cut only at a space: digits after a dash belong to the same number ("4111-...-1111-978")
    ends = [i for i in range(1, len(candidate) + 1) if i == len(candidate) or candidate[i] == " "]
    for end in reversed(ends):
        digits = "".join(c for c in candidate[:end] if c.isdigit())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            return end
    return None


def _iban(candidate: str) -> int | None:
    """Cut the candidate to its country's IBAN length, then check ISO 13616 mod-97.

    The regex cannot know where an IBAN ends (a space-grouped IBAN followed by an upper-case word
    looks like a longer one), so the country's registered length decides.
    """
    length = _table()["iban_lengths"].get(candidate[:2])
    if length is None:
        return None
    kept, end = [], 0
    for end, c in enumerate(candidate, start=1):  # noqa: B007 - `end` is read after the loop
        if c != " ":
            kept.append(c)
            if len(kept) == length:
                break
    if len(kept) < length:
        return None
    compact = "".join(kept)
    # move country code + check digits to the end, letters become 10..35; a valid IBAN leaves 1
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return end if int(digits) % 97 == 1 else None


def _ip(candidate: str) -> int | None:
    """Whatever the stdlib accepts as an IPv4 or IPv6 address (IPv4 octets <= 255)."""
    try:
        addr = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    # Compressed IPv6 forms like "::" or "::1" also occur in code (Python's `xs[::-1]`); an address
    # with fewer than three hex groups identifies no one, so it is not reported. A dotted IPv4 tail
    # holds 32 bits, two groups: "::ffff:192.0.2.1" is an address.
    if addr.version == 6:
        groups = [g for g in candidate.split(":") if g]
        if len(groups) + sum("." in g for g in groups) < 3:
            return None
    return len(candidate)


_RETINA = re.compile(r"\d+x")  # the @2x / @3x suffix of image files


def _email(candidate: str) -> int | None:
    """An address whose domain is a host name, not a file name or a version.

    The regex already wants a letters-only TLD (so lodash@4.17.21 never matches); here
    "icon@2x.png" (a retina suffix, or a file type for a TLD) and "pkg@1.2.beta" (numbered labels)
    are refused.
    """
    labels = candidate.rpartition("@")[2].split(".")
    if labels[-1].lower() in _file_extensions():
        return None
    if any(_RETINA.fullmatch(label) for label in labels[:-1]):
        return None
    if sum(label.isdigit() for label in labels[:-1]) >= 2:
        return None
    return len(candidate)


_VALIDATORS: dict[str, Callable[[str], int | None]] = {
    "none": len, "luhn": _card, "iban": _iban, "ip": _ip, "email": _email,
}


# --------------------------------------------------------------------------- the pattern table


@cache
def _table() -> dict:
    import yaml

    return yaml.safe_load(PATTERNS_FILE.read_text(encoding="utf-8"))


@cache
def _file_extensions() -> frozenset[str]:
    return frozenset(_table()["types"]["email"].get("file_extensions", []))


def _fold(text: str) -> str:
    """Lower case without accents, so "Teléfono" and "TELEFONO" read the same."""
    if text.isascii():
        return text.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


@cache
def _words() -> dict[str, _Words]:
    out = {}
    for name, spec in _table().get("words", {}).items():
        single, phrases = [], []
        for entry in spec["words"]:
            # "soc. sec." and "soc sec" are the same two words; a trailing "*" allows any ending
            words = _TOKEN.findall(_fold(entry.rstrip("*")))
            last = re.escape(words[-1]) + (r"\w*" if entry.endswith("*") else "")
            if len(words) == 1:
                single.append(last)
            else:
                phrases.append((re.compile(last), tuple(words[:-1])))
        out[name] = _Words(re.compile("|".join(single) or "(?!)"), tuple(phrases), int(spec["window"]))
    return out


def _check_table(table: dict) -> None:
    """A typo in the YAML must not silently skip a check: report every unknown validator or word
    list at once."""
    where = {"file": str(PATTERNS_FILE)}
    problems = Collector(f"{PATTERNS_FILE.name} has errors:")
    known_lists = set(table.get("words", {}))
    for name, spec in table["types"].items():
        if spec.get("validate", "none") not in _VALIDATORS:
            problems.add(f"PII type '{name}' names an unknown validator '{spec['validate']}'",
                         f"use one of {', '.join(_VALIDATORS)}", field=name, **where)
        lists = {spec["label"]} if spec.get("label") else set()
        for p in spec["patterns"]:
            lists |= set(p.get("veto", [])) | set(p.get("veto_after", []))
            if p.get("needs_label") and not spec.get("label"):
                problems.add(f"a pattern of PII type '{name}' needs a label, but the type names none",
                             "add `label: <word list>` to the type", field=name, **where)
        for missing in sorted(lists - known_lists):
            problems.add(f"PII type '{name}' names an unknown word list '{missing}'",
                         f"add it under `words:` or use one of {', '.join(sorted(known_lists))}", field=name,
                         **where)
    problems.raise_if_any()


@cache
def _patterns() -> dict[str, list[_Pattern]]:
    _check_table(_table())
    out: dict[str, list[_Pattern]] = {}
    for name, spec in _table()["types"].items():
        ext = spec.get("extension", "")
        out[name] = [_Pattern(name, re.compile(p["regex"].replace("{ext}", ext), re.VERBOSE),
                              tuple(p["digits"]) if p.get("digits") else None, spec.get("validate", "none"),
                              spec.get("label"), bool(p.get("needs_label")), tuple(p.get("veto", [])),
                              tuple(p.get("veto_after", [])))
                     for p in spec["patterns"]]
    return out


@cache
def _triggers() -> dict[str, tuple[bool, re.Pattern | None]]:
    """type -> (whether every match holds a digit, the trigger regex)."""
    return {name: (bool(spec.get("has_digit")), re.compile(spec["trigger"]) if spec.get("trigger") else None)
            for name, spec in _table()["types"].items()}


def pii_types() -> list[str]:
    """The PII types that find_pii knows, in tie-break priority order."""
    return list(_table()["priority"])


def _tag(pii_type: str) -> str:
    spec = _table()["types"].get(pii_type)
    return spec["tag"] if spec else pii_type.upper()


def _check_types(types: list[str] | None) -> list[str]:
    known = pii_types()
    if types is None:
        return known
    for t in types:
        if t not in known:
            close = difflib.get_close_matches(t, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise fail(f"unknown PII type '{t}'", f"{hint}known types: {', '.join(known)}", field="types")
    return list(types)


# --------------------------------------------------------------------------- context words


def _distance_before(text: str, start: int, name: str, *, veto: bool = False) -> int | None:
    """How many words stand between the nearest entry of list `name` and `start` (0: right before
    it), or None when none is within the list's window. For a veto, a word with a digit or a
    sentence break after it does not count: "order 4521, call 555-123-4567" vetoes 4521, not the
    phone, and "your order is ready; 555-123-4567 is my cell" vetoes nothing."""
    words = _words()[name]
    lo = max(0, start - _BEFORE_CHARS)
    window = _fold(text[lo:start])
    found = list(_TOKEN.finditer(window))
    if found and lo > 0 and found[0].start() == 0 and text[lo - 1].isalnum():
        found = found[1:]  # the window cut this word in two
    tokens = [m.group() for m in found]
    for back in range(min(words.window, len(tokens))):
        i = len(tokens) - 1 - back
        if words.ends_at(tokens, i):
            return None if veto and _SENTENCE_BREAK.search(window, found[i].end()) else back
        if veto and any(c.isdigit() for c in tokens[i]):
            return None
    return None


def _followed_by(text: str, end: int, name: str) -> bool:
    words = _words()[name]
    tokens = _TOKEN.findall(_fold(text[end:end + _AFTER_CHARS]))[:words.window]
    return any(words.ends_at(tokens, i) for i in range(len(tokens)))


def _context_ok(text: str, start: int, end: int, pattern: _Pattern) -> bool:
    """The label and veto rules of pii_patterns.yaml: a required label must stand near enough, and
    a veto word drops the candidate unless a label word stands nearer."""
    label = _distance_before(text, start, pattern.label) if pattern.label else None
    if pattern.needs_label and label is None:
        return False
    for name in pattern.veto:
        veto = _distance_before(text, start, name, veto=True)
        if veto is not None and (label is None or veto < label):
            return False
    return not any(_followed_by(text, end, name) for name in pattern.veto_after)


# --------------------------------------------------------------------------- finding


def _candidates(text: str, pattern: _Pattern) -> list[PiiMatch]:
    found = []
    has_ext = "ext" in pattern.regex.groupindex
    for m in pattern.regex.finditer(text):
        candidate = m.group()
        if pattern.digits:
            # an extension ("x15") is part of the match, not of the number's length
            core = candidate[:m.start("ext") - m.start()] if has_ext and m.group("ext") else candidate
            n = sum(c.isdigit() for c in core)
            if not pattern.digits[0] <= n <= pattern.digits[1]:
                continue
        keep = _VALIDATORS[pattern.validate](candidate)
        if not keep:
            continue
        end = m.start() + keep
        # a cut-down match must still end at a token boundary (IBAN: "GB82...32XYZ" is no IBAN)
        if keep < len(candidate) and candidate[keep].isalnum():
            continue
        if (pattern.label or pattern.veto or pattern.veto_after) and not _context_ok(text, m.start(), end, pattern):
            continue
        found.append(PiiMatch(pattern.type, m.start(), end, text[m.start():end]))
    return found


def _without_overlaps(matches: list[PiiMatch]) -> list[PiiMatch]:
    """Longest match first (ties by type priority, then position); drop any that overlap a kept one."""
    rank = {t: i for i, t in enumerate(pii_types())}
    ordered = sorted(matches, key=lambda m: (m.start - m.end, rank.get(m.type, len(rank)), m.start))
    starts: list[int] = []  # kept spans, sorted by start; they never overlap each other
    kept: list[PiiMatch] = []
    for m in ordered:
        i = bisect_left(starts, m.start)
        if i > 0 and kept[i - 1].end > m.start:
            continue
        if i < len(kept) and kept[i].start < m.end:
            continue
        starts.insert(i, m.start)
        kept.insert(i, m)
    return kept


def find_pii(text: str, types: list[str] | None = None) -> list[PiiMatch]:
    """All PII in `text` (every type, or those named), sorted by position and never overlapping.

    Only candidates that pass their check are reported: a card number must pass Luhn, an IBAN
    mod-97, an IP address must be valid, and an ambiguous form (a bare run of digits) needs its
    label word before it. Where two types overlap the longer match is kept.
    """
    table, triggers = _patterns(), _triggers()
    # ten substring searches (memchr in C) beat any regex scan, and most prose has no digit at all
    has_digit = any(d in text for d in "0123456789")
    found = []
    for t in _check_types(types):
        needs_digit, trigger = triggers[t]
        if (needs_digit and not has_digit) or (trigger is not None and not trigger.search(text)):
            continue
        for p in table[t]:
            found.extend(_candidates(text, p))
    return _without_overlaps(found)


# --------------------------------------------------------------------------- acting on matches


def redact(text: str, matches: list[PiiMatch], style: str = "tag") -> str:
    """Replace each match: style "tag" writes its tag ("[EMAIL]", "[PHONE]", ...), "mask" writes
    one "*" per character (keeps offsets and lengths). Overlapping matches: the earlier one wins."""
    if style not in STYLES:
        raise fail(f"unknown redaction style '{style}'", f"use one of {', '.join(STYLES)}", field="style")
    parts, pos = [], 0
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.start < pos:
            continue
        parts.append(text[pos:m.start])
        parts.append(f"[{_tag(m.type)}]" if style == "tag" else "*" * (m.end - m.start))
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts)


def count_by_type(matches: list[PiiMatch]) -> dict[str, int]:
    """How many matches of each type, e.g. {"email": 2, "phone": 1} (absent types are left out)."""
    return dict(Counter(m.type for m in matches))


def apply_pii_policy(text: str, policy: str, *, types: list[str] | None = None
                     ) -> tuple[str | None, dict[str, int]]:
    """Apply one data-cleaning policy to a text and say what was found.

    redact: the text with every match tagged; drop: None when the text holds any PII, else the
    text; report: the text unchanged. The counts by type come back in every case.
    """
    if policy not in POLICIES:
        raise fail(f"unknown PII policy '{policy}'", f"use one of {', '.join(POLICIES)}", field="pii")
    matches = find_pii(text, types)
    counts = count_by_type(matches)
    if policy == "redact":
        return redact(text, matches), counts
    if policy == "drop":
        return (None if matches else text), counts
    return text, counts
