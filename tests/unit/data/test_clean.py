"""Text curation: normalisation, HTML stripping, boilerplate lines, quality reasons, language detection."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from tunesmith.data.clean import (
    detect_language,
    known_languages,
    normalize_text,
    quality_reasons,
    repetition_ratio,
    strip_boilerplate,
    symbol_ratio,
)
from tunesmith.errors import TunesmithError

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
ALPACA = SHARED_DATA / "alpaca" / "alpaca_data_rows_0000-0099.jsonl"


def alpaca_rows() -> list[dict]:
    if not ALPACA.is_file():
        pytest.skip(f"shared data not found at {ALPACA}")
    return [json.loads(line) for line in ALPACA.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- NFC


def test_nfc_composes_decomposed_e_acute():
    decomposed = "caf" + "e\u0301"
    assert len(decomposed) == 5
    out = normalize_text(decomposed)
    assert out == "caf\u00e9"
    assert len(out) == 4
    assert unicodedata.is_normalized("NFC", out)


def test_nfc_can_be_turned_off():
    assert normalize_text("e\u0301", nfc=False) == "e\u0301"


# ---------------------------------------------------------------- whitespace


@pytest.mark.parametrize("text, expected", [
    ("a  \t  b", "a b"),                                    # runs of spaces and tabs collapse
    ("line one   \nline two\t\n", "line one\nline two"),    # line ends trimmed
    ("para one\n\n\n\n\npara two", "para one\n\npara two"),  # at most one blank line
    ("line one\nline two", "line one\nline two"),           # single newlines are kept
    ("  \n\n  hello  \n\n  ", "hello"),                      # outer blank lines and spaces go
    ("win\r\nmac\rend", "win\nmac\nend"),                   # CRLF / CR become LF
    ("zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"),
    ("10\u00a0kg and 5\u202fm", "10 kg and 5 m"),           # NBSP and narrow NBSP become spaces
])
def test_whitespace_rules(text, expected):
    assert normalize_text(text) == expected


def test_whitespace_keeps_indentation_and_zwj():
    code = "def f(x):\n    return  x   *  2"
    assert normalize_text(code) == "def f(x):\n    return x * 2"
    coder = "\U0001F469\u200d\U0001F4BB"  # woman technologist: the ZWJ is part of the emoji
    assert normalize_text(coder) == coder


def test_whitespace_leaves_fenced_code_alone_except_line_ends():
    text = "Code:\n\n\n\n```python\nx  =  1   \n\n\n\ny = 2\n```\n\n\n\nDone."
    assert normalize_text(text) == "Code:\n\n```python\nx  =  1\n\n\n\ny = 2\n```\n\nDone."


def test_whitespace_can_be_turned_off():
    assert normalize_text("a   b\n\n\n\nc", whitespace=False) == "a   b\n\n\n\nc"


# ---------------------------------------------------------------- HTML


def test_html_entities_are_decoded():
    html = "<p>AT&amp;T&nbsp;v. Smith, &#167; 1983 and &sect;&nbsp;2</p>"
    assert normalize_text(html) == "AT&T v. Smith, § 1983 and § 2"


def test_html_scripts_styles_and_comments_are_removed():
    html = ("<html><head><style>p { color: red }</style></head><body>"
            "<p>Hello</p><script>var s = '<p>not text</p>'; if (a < b) {}</script>"
            "<!-- hidden --><noscript>enable js</noscript><p>world</p></body></html>")
    assert normalize_text(html) == "Hello\n\nworld"


def test_html_blocks_and_breaks_become_line_breaks():
    assert normalize_text("<ul><li>one</li><li>two</li></ul>") == "one\ntwo"
    assert normalize_text("a<br>b<br/>c") == "a\nb\nc"
    assert normalize_text("<div>Soft\nwrapped   line</div><p>Next</p>") == "Soft wrapped line\n\nNext"


def test_html_keeps_symbols_and_bare_angle_brackets():
    html = "<p>Claims under § 1983; diagnosis ICD-10-CM: F41.1; if a < b and c > d then stop.</p>"
    assert normalize_text(html) == "Claims under § 1983; diagnosis ICD-10-CM: F41.1; if a < b and c > d then stop."


@pytest.mark.parametrize("text", [
    "Claims under § 1983 were dismissed.",
    "Diagnosis: ICD-10-CM: F41.1 (generalized anxiety disorder)",
    "If a < b and c > d, then a - c < b - d.",
    "List<String> names = new ArrayList<>();",
    "std::vector<int> v; template<typename T> T max(T a, T b);",
    "Use `<div>` to open a block and `</div>` to close it.",
    "AT&amp;T in plain text stays as written",  # no tags, so not HTML: entities are left alone
])
def test_plain_text_is_not_treated_as_html(text):
    assert normalize_text(text) == text


def test_html_inside_fenced_code_is_kept():
    text = "Example:\n```html\n<p>keep <b>me</b></p>\n```\n<p>strip <b>this</b></p>"
    assert normalize_text(text) == "Example:\n```html\n<p>keep <b>me</b></p>\n```\nstrip this"


def test_html_stripping_can_be_turned_off():
    assert normalize_text("<p>x &amp; y</p>", strip_html=False) == "<p>x &amp; y</p>"


# ---------------------------------------------------------------- boilerplate


def test_boilerplate_lines_go_and_content_stays():
    page = "\n".join([
        "Skip to main content",
        "Home | About Us | Blog | Contact",
        "How to brew green tea",
        "",
        "Heat the water to 80 degrees, not boiling.",
        "",
        "Share on Facebook",
        "",
        "Steep for two minutes, then remove the leaves.",
        "We use cookies to improve your experience. By continuing to browse you agree. Accept cookies",
        "Click here to subscribe",
        "© 2024 Tea Times Ltd. All rights reserved.",
        "",
    ])
    assert strip_boilerplate(page) == (
        "How to brew green tea\n\nHeat the water to 80 degrees, not boiling.\n\n"
        "Steep for two minutes, then remove the leaves.")


@pytest.mark.parametrize("text", [
    "Which channel should I use?\nEmail",                        # one-word answers are content
    "Social networks:\nFacebook\nTwitter\nLinkedIn",
    "| Home | About | Contact |\n|---|---|---|\n| 1 | 2 | 3 |",  # a Markdown table, not a link row
    "```python\n# Copyright 2020 Acme. All rights reserved.\nx = 1\n```",  # code is never touched
    "Our privacy policy explains how we store your data.\n\n\nSecond paragraph keeps its blanks.",
    "In this tutorial we use cookies to improve login speed across visits.",  # phrase mid-sentence
    ("The court noted that the phrase all rights reserved, once required by the Buenos Aires "
     "Convention, no longer has any legal effect in most countries that joined the Berne Convention."),
])
def test_boilerplate_leaves_content_alone(text):
    assert strip_boilerplate(text) == text


def test_boilerplate_on_real_c4_text():
    path = SHARED_DATA / "raw_text" / "c4_demo.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    before = [line for t in texts for line in t.split("\n")]
    after = [line for t in texts for line in strip_boilerplate(t).split("\n")]
    removed = sorted(set(before) - set(after))
    assert len(removed) == 5  # every one a footer or a sign-up line; no content line goes
    assert "© 2018 Allergan. All rights reserved." in removed
    assert "Coosa Creek, LLC. All rights reserved; 2010." in removed
    assert all(len(line.split()) <= 30 for line in removed)


def test_boilerplate_leaves_real_answers_alone():
    rows = alpaca_rows()
    assert [r["output"] for r in rows if strip_boilerplate(r["output"]) != r["output"]] == []


# ---------------------------------------------------------------- quality


@pytest.mark.parametrize("text, expected", [
    ("a b c a b c", 0.25),                  # trigrams abc bca cab abc: 1 of 4 repeats
    ("the cat sat. The cat sat!", 0.25),    # case and punctuation do not matter
    ("x x x x x", 2 / 3),                   # three trigrams, all 'x x x'
    ("one two", 0.0),                       # fewer than three words
    ("the quick brown fox jumps over the lazy dog", 0.0),
])
def test_repetition_ratio(text, expected):
    assert repetition_ratio(text) == pytest.approx(expected)


@pytest.mark.parametrize("text, expected", [
    ("fog.", 0.0),                  # sentence punctuation is not a symbol
    ("$$$ abc", 1.0),               # 3 symbols, 3 letters
    ("a+b", 0.5),
    ("3x + 5y = 0", 1.0),           # + and = over x and y; digits count as neither
    ("\u20ac\u20ac", 2.0),          # no letters: symbols / 1
    ("\u0939\u093f\u0928\u094d\u0926\u0940 +", 1 / 6),  # Hindi vowel signs are marks, counted as letters
    ("", 0.0),
])
def test_symbol_ratio(text, expected):
    assert symbol_ratio(text) == pytest.approx(expected)


def test_quality_each_reason():
    assert quality_reasons("") == ["too_short"]
    assert quality_reasons("   ") == ["too_short"]
    assert quality_reasons("Hello there.", min_chars=13) == ["too_short"]
    assert quality_reasons("Hello there.", min_chars=12) == []
    assert quality_reasons("Hello there.", max_chars=11) == ["too_long"]
    assert quality_reasons("buy now " * 20) == ["repetitive"]
    assert quality_reasons("buy now " * 20, max_repetition=0.95) == []
    assert quality_reasons("$$$ ### @@@ win big") == ["symbols"]
    german = "Ich habe heute keine Zeit, weil ich arbeiten muss."
    assert quality_reasons(german, languages=["en"]) == ["language"]
    assert quality_reasons(german, languages=["en", "de"]) == []


def test_quality_reasons_combine():
    assert quality_reasons("$ $ $ $ $ $ $ $ a", min_chars=100) == ["too_short", "symbols"]


def test_quality_language_needs_confidence():
    # A two-word English answer gets a low-confidence guess; it must not count as another language.
    lang, confidence = detect_language("Transitive.")
    assert confidence < 0.65
    assert quality_reasons("Transitive.", languages=["en"]) == []
    assert quality_reasons("12345", languages=["en"]) == []  # no letters: undetermined, kept


def test_quality_unknown_language_code_is_a_user_error():
    with pytest.raises(TunesmithError, match="'english'"):
        quality_reasons("Hello", languages=["english"])


def test_quality_passes_real_alpaca_instructions():
    rows = alpaca_rows()
    failing = {r["instruction"]: quality_reasons(r["instruction"], languages=["en"]) for r in rows}
    assert {k: v for k, v in failing.items() if v} == {}


# ---------------------------------------------------------------- language


@pytest.mark.parametrize("text, code", [
    ("Ich habe heute keine Zeit, weil ich arbeiten muss.", "de"),
    ("Der Hund schläft heute im Garten unter dem alten Baum.", "de"),
    ("Nous allons au marché demain matin avec mes parents.", "fr"),
    ("Le chat dort sur le canapé depuis ce matin.", "fr"),
    ("El perro duerme en el jardín bajo el árbol grande.", "es"),
    ("¿Dónde está la estación de tren más cercana?", "es"),
])
def test_detect_language_short_sentences(text, code):
    lang, confidence = detect_language(text)
    assert lang == code
    assert 0.8 < confidence <= 1.0


def test_detect_language_real_english():
    rows = alpaca_rows()
    results = [detect_language(r["instruction"]) for r in rows]
    assert sum(lang == "en" for lang, _ in results) >= 95
    long_outputs = [r["output"] for r in rows if len(r["output"]) >= 300]
    assert len(long_outputs) >= 20
    assert all(detect_language(t)[0] == "en" for t in long_outputs)


def test_detect_language_without_letters_is_undetermined():
    assert detect_language("") == ("und", 0.0)
    assert detect_language("12345 + 678") == ("und", 0.0)


def test_detect_language_types_and_codes():
    lang, confidence = detect_language("The weather is lovely today, so we are going for a walk.")
    assert (lang, type(lang), type(confidence)) == ("en", str, float)
    assert {"en", "de", "fr", "es"} <= set(known_languages())
