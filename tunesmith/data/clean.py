"""Pure text curation: normalise text, strip web boilerplate, score quality, detect the language.

Every function takes a string and returns a string or numbers, so the pipeline can apply them per
field and report why a row was dropped. Markdown fenced code blocks (``` or ~~~) are left alone by
the HTML and whitespace passes: fine-tuning answers often hold code whose indentation and markup
are the content. The boilerplate phrase lists live in boilerplate.yaml beside this file.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

from tunesmith.errors import fail

__all__ = [
    "detect_language",
    "known_languages",
    "normalize_text",
    "quality_reasons",
    "repetition_ratio",
    "strip_boilerplate",
    "symbol_ratio",
]

# A text is rejected for its language only when another language is detected with at least this
# probability. 0.65 is datatrove's LanguageFilter default (FineWeb), but datatrove uses it the other
# way round (keep only when an allowed language scores above it), which would drop many short
# answers: py3langid guesses "Telegram" or "The maximum value is 25." as Luxembourgish or Latin at
# 0.04-0.55. On tunesmith's shared samples (about 3,500 Alpaca, Alpaca-GPT4, Dolly, C4 and AG News
# texts) this rule flagged 5, each really Spanish or French.
MIN_LANGUAGE_CONFIDENCE = 0.65
REPETITION_NGRAM = 3  # word n-gram size for repetition_ratio (Gopher/Dolma use 2-4 for "top" and 5-10 for "dup")
UNDETERMINED = "und"  # ISO 639-2 code for "cannot tell", returned for text without letters

# ---------------------------------------------------------------- Markdown fences


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _segments(lines: list[str]) -> Iterator[tuple[bool, list[str]]]:
    """Split lines into (is_code, lines) runs at Markdown fenced code blocks (fence lines are code).

    markdown-it-py finds fences too (with line maps), but it is not a dependency and CommonMark's
    fence rule is this small: a run of 3+ backticks or tildes opens, the same char at least as
    long closes, and an unclosed fence runs to the end.
    """
    run: list[str] = []
    fence = ""
    for line in lines:
        m = _FENCE.match(line)
        if not fence and m:
            if run:
                yield False, run
            run, fence = [line], m.group(1)
        elif fence:
            run.append(line)
            closing = line.strip()
            if m and closing == closing[0] * len(closing) and closing[0] == fence[0] and len(closing) >= len(fence):
                yield True, run
                run, fence = [], ""
        else:
            run.append(line)
    if run:
        yield bool(fence), run


def _prose(text: str) -> str:
    """The text outside fenced code blocks (for deciding whether it is HTML)."""
    return "\n".join(line for code, run in _segments(text.split("\n")) if not code for line in run)


# ---------------------------------------------------------------- HTML


# Tags whose content is never text a reader sees.
_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"})
# Tags that start a new paragraph or a new line in rendered text.
_PARAGRAPH = frozenset({"p", "div", "section", "article", "header", "footer", "main", "aside", "nav",
                        "blockquote", "pre", "table", "ul", "ol", "dl", "form", "figure", "h1", "h2",
                        "h3", "h4", "h5", "h6", "hr", "address", "details", "summary", "title"})
_LINE = frozenset({"br", "li", "tr", "dt", "dd", "caption", "figcaption", "option"})
_CELL = frozenset({"td", "th"})

_INLINE_CODE = re.compile(r"`[^`\n]+`")
_TAG_OPEN = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^<>]*)?/?>")
_TAG_CLOSE = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_HTML_ONLY = re.compile(r"<!doctype\s+html|<!--.*?-->|<br\s*/?>", re.IGNORECASE | re.DOTALL)


def _looks_like_html(text: str) -> bool:
    """True when text has real HTML: a doctype, a comment, <br>, or a tag closed by its </tag>.

    A lone '<' in prose ("a < b"), generics in code ("List<String>", "vector<int>") and tags quoted
    in `inline code` or fenced blocks never open and close a pair, so they do not count.
    """
    text = _INLINE_CODE.sub(" ", _prose(text))
    if _HTML_ONLY.search(text):
        return True
    opened = {m.group(1).lower() for m in _TAG_OPEN.finditer(text)}
    return any(m.group(1).lower() in opened for m in _TAG_CLOSE.finditer(text))


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML fragment, with line breaks where blocks end.

    stdlib html.parser: it decodes entities (convert_charrefs) and, like a browser, treats a '<'
    not followed by a letter as text, so "a < b" and "§ 1983" survive. BeautifulSoup's get_text
    does the same but is not a dependency and joins blocks without line breaks unless told.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0  # depth inside script/style/...: their text is dropped
        self.pre = 0  # depth inside <pre>: its whitespace is kept as is

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _PARAGRAPH:  # a line or cell break already came with the start tag
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        # <br/> is one line break; the default would run start and end and break twice.
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        # Outside <pre>, a newline in HTML source is only a soft wrap: it renders as a space.
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPH:
            self.parts.append("\n\n")
        elif tag in _LINE:
            self.parts.append("\n")
        elif tag in _CELL:
            self.parts.append(" ")

    def text(self) -> str:
        text = "".join(self.parts)
        text = re.sub(r"[ \t]+\n", "\n", text)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def _strip_html(text: str) -> str:
    """Visible text of the HTML outside fenced code blocks; fences are kept verbatim."""
    out = []
    for code, run in _segments(text.split("\n")):
        chunk = "\n".join(run)
        if not code:
            parser = _TextExtractor()
            parser.feed(chunk)
            parser.close()
            chunk = parser.text()
        out.append(chunk)
    return "\n".join(out)


# ---------------------------------------------------------------- whitespace


# Invisible format characters that only break words apart for a tokenizer: zero-width space, word
# joiner, BOM and soft hyphen. ZWJ/ZWNJ (U+200D/U+200C) are kept: they join emoji sequences and
# change spelling in Persian and Indic scripts.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad]")
# No-break and typographic spaces become a plain space; U+3000 (ideographic space) is kept for CJK.
_SPACE_LIKE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f]")
_LINE_BREAK = re.compile("\r\n?|[\u2028\u2029\x85]")
_INDENT = re.compile(r"[ \t]*")
_HSPACE = re.compile(r"[ \t\f\v]+")


def _normalize_whitespace(text: str) -> str:
    """Collapse spaces, trim line ends, keep at most one blank line; indentation and code kept.

    Leading indentation is kept because it is meaning in code and nested lists; inside fenced
    code blocks only trailing whitespace is trimmed. ftfy.fix_text also folds odd spaces but
    rewrites quotes and mojibake as well, which is more than a normaliser should do silently.
    """
    text = _LINE_BREAK.sub("\n", text)
    text = _SPACE_LIKE.sub(" ", _INVISIBLE.sub("", text))
    out: list[str] = []
    for code, run in _segments(text.split("\n")):
        for line in run:
            if code:
                out.append(line.rstrip())
                continue
            indent = _INDENT.match(line).group()
            rest = _HSPACE.sub(" ", line[len(indent):]).strip()
            line = indent + rest if rest else ""
            if line or (out and out[-1]):  # a second blank line in a row is dropped
                out.append(line)
    return "\n".join(out).strip()


def normalize_text(text: str, *, nfc: bool = True, whitespace: bool = True, strip_html: bool = True) -> str:
    """Strip HTML (only when the text has real tags), apply Unicode NFC, then tidy whitespace."""
    if strip_html and _looks_like_html(text):
        text = _strip_html(text)
    if nfc:
        # After HTML: entities such as &eacute; or &#769; may decode to composable characters.
        text = unicodedata.normalize("NFC", text)
    if whitespace:
        text = _normalize_whitespace(text)
    return text


# ---------------------------------------------------------------- boilerplate


_LINK_SEPARATORS = re.compile(r"\s*[|•·»]\s*")
_NON_WORD = re.compile(r"[^\w©]+")


def _key(line: str) -> str:
    """Lowercase, punctuation to spaces, single spaces: the form boilerplate.yaml phrases are in."""
    return " ".join(_NON_WORD.sub(" ", line.lower()).split())


@cache
def _boilerplate() -> dict:
    import yaml

    raw = yaml.safe_load(Path(__file__).with_name("boilerplate.yaml").read_text(encoding="utf-8"))
    exact = frozenset(_key(p) for p in raw["exact"])
    # A `contains` phrase counts only where it starts or ends a sentence (or the line): "Foo Ltd.
    # All rights reserved." is a footer, "the phrase all rights reserved, once required ..." is prose.
    phrases = "|".join(r"\W+".join(map(re.escape, _key(p).split())) for p in raw["contains"])
    edge = r"[.!?|•·»]"
    contains = re.compile(rf"(?:^|{edge}\s*)(?:{phrases})\b|\b(?:{phrases})\W*?(?:{edge}|$)")
    return {
        "max_words": int(raw["max_words"]),
        "exact": exact,
        "links": exact | {_key(p) for p in raw["link_words"]},
        "contains": contains,
        "patterns": tuple(re.compile(p) for p in raw["patterns"]),
    }


def _is_boilerplate(line: str) -> bool:
    rules = _boilerplate()
    key = _key(line)
    if not key or len(key.split()) > rules["max_words"]:
        return False
    if key in rules["exact"]:
        return True
    lowered = " ".join(line.lower().split())
    parts = [p for p in map(_key, _LINK_SEPARATORS.split(lowered)) if p]
    if not lowered.startswith("|") and len(parts) >= 3 and all(p in rules["links"] for p in parts):
        return True
    if rules["contains"].search(lowered):
        return True
    return any(p.search(lowered) for p in rules["patterns"])


def strip_boilerplate(text: str) -> str:
    """Drop whole lines that are web boilerplate (cookie banners, share/subscribe lines, footers).

    Conservative by design: a line goes only when it matches boilerplate.yaml and is short, lines
    inside fenced code are never touched (a licence header is code), and a blank line left
    doubled by a removal is dropped. jusText and trafilatura remove boilerplate from HTML pages,
    using the markup; they do not apply to text that has already lost its tags.
    """
    out: list[str] = []
    removed = False
    for code, run in _segments(text.split("\n")):
        for line in run:
            if not code and _is_boilerplate(line):
                removed = True
                continue
            blank = not line.strip()
            if blank and removed and (not out or not out[-1].strip()):
                continue  # removal left two blank lines (or a leading one) in a row
            out.append(line)
            removed = removed and blank
    while removed and out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


# ---------------------------------------------------------------- quality


_WORD = re.compile(r"\w+")
# Ordinary sentence punctuation is not a "symbol": "fog." or "0, 2, 3" must not look like noise.
_PROSE_PUNCTUATION = frozenset(".,;:!?'\"()-‐‑–—‘’‚“”„«»‹›…。、，．！？；：「」『』（）")


_DELETE_ASCII_LETTERS = str.maketrans("", "", string.ascii_letters)
_DELETE_ASCII_SYMBOLS = str.maketrans("", "", "".join(
    c for c in map(chr, range(128)) if unicodedata.category(c)[0] in "PS" and c not in _PROSE_PUNCTUATION))


def repetition_ratio(text: str, n: int = REPETITION_NGRAM) -> float:
    """Fraction of word n-grams (default 3) that repeat an earlier n-gram: 1 - distinct / total.

    Words are lowercased \\w+ runs. This is the n-gram count form of the Gopher "duplicate n-gram"
    rule (Rae et al. 2021, as in Dolma's and datatrove's Gopher repetition filters), which instead
    weighs duplicated n-grams by characters. The count form was chosen because it is steadier on
    short texts: on the shared samples natural prose stays under 0.2 (Wikipedia articles ~0.1),
    while templated spam reaches 0.35-0.6. Texts with fewer than n words score 0.0.
    """
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def symbol_ratio(text: str) -> float:
    """Symbols per letter: characters of Unicode class P* or S* other than sentence punctuation.

    Letters are classes L* and M* (Indic vowel signs are marks). Digits and whitespace count as
    neither. With no letters the ratio is symbols / 1, so a text of pure symbols still scores high.
    Prose scores about 0.01-0.05; Markdown tables, code and formulas score higher by nature.
    """
    if text.isascii():  # fast path (most training text): str.translate deletes in C, no per-char loop
        letters = len(text) - len(text.translate(_DELETE_ASCII_LETTERS))
        symbols = len(text) - len(text.translate(_DELETE_ASCII_SYMBOLS))
        return symbols / max(letters, 1)
    symbols = letters = 0
    for ch in text:
        kind = unicodedata.category(ch)[0]
        if kind in "LM":
            letters += 1
        elif kind in "PS" and ch not in _PROSE_PUNCTUATION:
            symbols += 1
    return symbols / max(letters, 1)


def quality_reasons(text: str, *, min_chars: int = 1, max_chars: int | None = None, max_repetition: float = 0.3,
                    max_symbol_ratio: float = 0.3, languages: list[str] | None = None,
                    min_language_confidence: float = MIN_LANGUAGE_CONFIDENCE) -> list[str]:
    """Why text fails the quality filters: any of too_short, too_long, repetitive, symbols, language.

    An empty list means the text passes. Lengths are characters after stripping outer whitespace.
    "language" needs `languages` (ISO 639-1 codes) and fires only when another language is detected
    with at least `min_language_confidence`, so short or mixed text is given the benefit of doubt.
    """
    reasons = []
    size = len(text.strip())
    if size < min_chars:
        reasons.append("too_short")
    if max_chars is not None and size > max_chars:
        reasons.append("too_long")
    if repetition_ratio(text) > max_repetition:
        reasons.append("repetitive")
    if symbol_ratio(text) > max_symbol_ratio:
        reasons.append("symbols")
    if languages:
        unknown = sorted(set(languages) - _known())
        if unknown:
            raise fail(f"unknown language code(s) {', '.join(map(repr, unknown))}",
                       "use ISO 639-1 codes such as 'en', 'de', 'fr' (see clean.known_languages())",
                       field="languages")
        lang, confidence = detect_language(text)
        if lang not in languages and confidence >= min_language_confidence:
            reasons.append("language")
    return reasons


# ---------------------------------------------------------------- language


@cache
def _identifier():
    """The py3langid model, loaded once (about 0.6 s) on first use.

    Chosen over the other offline detectors on PyPI: py3langid is the maintained fork of langid.py,
    its Naive Bayes model ships inside the 4.5 MB wheel (nothing is downloaded), it classifies a
    paragraph in under a millisecond, is deterministic, and norm_probs=True gives calibrated
    probabilities we can threshold. langdetect is slower and random unless seeded; langid itself has
    not been released since 2016; lingua is stronger on very short text but loads far larger models.
    """
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise fail("language detection needs the py3langid package",
                   "pip install py3langid==0.4.0") from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@cache
def _known() -> frozenset[str]:
    return frozenset(_identifier().labels)


def known_languages() -> list[str]:
    """Codes detect_language can return: ISO 639-1 where one exists, else ISO 639-3 (e.g. 'yue')."""
    return sorted(_known())


def detect_language(text: str) -> tuple[str, float]:
    """The most likely language of text as (code, probability); ("und", 0.0) when it has no letters.

    Codes are ISO 639-1 ("en", "de") except for languages that have none, which get ISO 639-3
    ("yue", "pcm"). Probabilities below about 0.5 are guesses: typical for a few words.
    """
    if not any(ch.isalpha() for ch in text):
        return UNDETERMINED, 0.0
    lang, confidence = _identifier().classify(text)
    return lang, float(confidence)
