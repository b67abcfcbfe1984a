"""Find, count and redact personal data (PII) in training text: emails, phone numbers, payment
cards, IBANs, IP addresses and US social security numbers.

The regexes live in pii_patterns.yaml beside this file; this module adds what a regex cannot do:
checksums (Luhn for cards, ISO 13616 mod-97 for IBANs), address validation (the stdlib
`ipaddress`), digit counts, and choosing one match where two types overlap.

Libraries looked at: Microsoft Presidio needs spaCy models (a download at run time, which
tunesmith never does), and `phonenumbers` parses well but only with a default region per text,
while training data mixes countries; patterns plus checksums catch the formats that matter here.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tunesmith.errors import fail

PATTERNS_FILE = Path(__file__).with_name("pii_patterns.yaml")
POLICIES = ("redact", "drop", "report")
STYLES = ("tag", "mask")


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
    """The longest run of whole digit groups (13-19 digits) that passes Luhn.

    Whole groups only, so "4111 1111 1111 1111 123" (card and CVV) keeps the card, while an
    unbroken run of digits is all or nothing.
    """
    ends = [i for i in range(1, len(candidate) + 1) if i == len(candidate) or candidate[i] in " -"]
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
    # with fewer than three hex groups identifies no one, so it is not reported.
    if addr.version == 6 and len([g for g in candidate.split(":") if g]) < 3:
        return None
    return len(candidate)


_VALIDATORS: dict[str, Callable[[str], int | None]] = {
    "none": len, "luhn": _card, "iban": _iban, "ip": _ip,
}


# --------------------------------------------------------------------------- the pattern table


@cache
def _table() -> dict:
    import yaml

    return yaml.safe_load(PATTERNS_FILE.read_text(encoding="utf-8"))


@cache
def _patterns() -> dict[str, list[_Pattern]]:
    out: dict[str, list[_Pattern]] = {}
    for name, spec in _table()["types"].items():
        validate = spec.get("validate", "none")
        if validate not in _VALIDATORS:  # a typo in the YAML must not silently skip a check
            raise fail(f"PII type '{name}' names an unknown validator '{validate}'",
                       f"use one of {', '.join(_VALIDATORS)}", file=str(PATTERNS_FILE), field=name)
        out[name] = [_Pattern(name, re.compile(p["regex"], re.VERBOSE),
                              tuple(p["digits"]) if p.get("digits") else None, validate)
                     for p in spec["patterns"]]
    return out


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


# --------------------------------------------------------------------------- finding


def _candidates(text: str, pattern: _Pattern) -> list[PiiMatch]:
    found = []
    for m in pattern.regex.finditer(text):
        candidate = m.group()
        if pattern.digits:
            n = sum(c.isdigit() for c in candidate)
            if not pattern.digits[0] <= n <= pattern.digits[1]:
                continue
        keep = _VALIDATORS[pattern.validate](candidate)
        if not keep:
            continue
        end = m.start() + keep
        # a cut-down match must still end at a token boundary (IBAN: "GB82...32XYZ" is no IBAN)
        if keep < len(candidate) and candidate[keep].isalnum():
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
    mod-97, an IP address must be valid. Where two types overlap the longer match is kept.
    """
    table = _patterns()
    found = [m for t in _check_types(types) for p in table[t] for m in _candidates(text, p)]
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
