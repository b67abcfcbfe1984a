"""IFEval: instruction-following checks that a program can verify (Zhou et al. 2023, arXiv 2311.07911).

Each instruction id ("punctuation:no_comma", "length_constraints:number_words", ...) maps to a
checker `fn(response, **kwargs) -> bool` in `INSTRUCTIONS`; its keyword arguments are the row's
`kwargs` entry for that instruction (IFEval's input_data.jsonl). `check` scores one response
strictly and loosely, `score` a whole set into the paper's four accuracies.

The checks follow the paper's definitions and, where the paper leaves a detail open, what the
official scorer does, so that numbers stay comparable with IFEval tables: keyword counts match
substrings case-insensitively ("war" counts in "toward"), forbidden words match whole words, and
a bullet is any line starting with "* " or "-". Written here rather than imported (STYLE rule 14):
the official scorer lives in google-research's repository and, vendored, inside lm-eval's whole
harness, and it needs NLTK's punkt data, which cannot be downloaded here; the small PyPI port
if-verifiable was not tried, as it would add a dependency for a few hundred lines of regexes.
Known differences: sentences are split by `_sentences` (fixed abbreviation list, see
ifeval.yaml) instead of punkt; languages are identified with py3langid instead of langdetect; and
keywords:letter_frequency counts the character it is given even when that is not a letter (the
official scorer silently swaps "#" or "!" for a *random* letter, so its result for those rows
cannot be reproduced).

Tables (abbreviations, constrained answers) live in ifeval.yaml beside this file.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from tunesmith.errors import fail

__all__ = ["INSTRUCTIONS", "check", "score"]

_HERE = Path(__file__).parent
_RELATIONS = ("less than", "at least")  # the only two comparisons IFEval's prompts use
_WORD = re.compile(r"\w+")  # what IFEval counts as a word: a run of letters, digits or "_"


@cache
def _tables() -> dict[str, Any]:
    """ifeval.yaml, read once."""
    import yaml

    return yaml.safe_load((_HERE / "ifeval.yaml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- shared helpers


def _compare(count: int, relation: str, target: int) -> bool:
    """count < target for "less than", count >= target for "at least" (IFEval's two relations)."""
    if relation == "less than":
        return count < target
    if relation == "at least":
        return count >= target
    raise fail(f"unknown IFEval relation {relation!r}", f"use one of {list(_RELATIONS)}")


def _sentences(text: str) -> list[str]:
    """Split text into sentences: a run of . ! ? (and closing quotes/brackets) before whitespace.

    The official scorer uses NLTK's punkt model, whose data cannot be downloaded here. This differs
    from punkt in three ways: abbreviations come from a fixed list (ifeval.yaml) instead of a
    learned one; a period after a single capital letter (an initial, "J. Smith") or after a list
    number at the start of a line ("1. First") never ends a sentence, where punkt decides from how
    the next word is usually capitalised; and a lowercase single letter ("located in o. Let's")
    always ends one. Text without sentence punctuation (a heading, a bullet without a period) joins
    the sentence that follows, as in punkt.
    """
    abbreviations = frozenset(_tables()["abbreviations"])
    closers = "\"'\u201d\u2019)]"
    pieces, start = [], 0
    for end in re.finditer(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)", text):
        token = re.search(r"\S*$", text[start:end.start()]).group()  # the word the punctuation ends
        word = token.lstrip("\"'(\u201c\u2018[")
        if end.group().rstrip(closers) == ".":  # only a lone period may end an abbreviation
            at_line_start = not text[:end.start() - len(token)].rsplit("\n", 1)[-1].strip()
            if word.lower() in abbreviations or (len(word) == 1 and word.isupper()) \
                    or (word.isdigit() and at_line_start):
                continue
        pieces.append(text[start:end.end()])
        start = end.end()
    pieces.append(text[start:])
    # A piece of only punctuation or spaces ("...", a stray quote) is not a sentence.
    return [p.strip() for p in pieces if re.search(r"\w", p)]


def _language(text: str) -> str:
    """Language code of text (ISO 639-1 where one exists), or "und" when it has no letters."""
    from tunesmith.data.clean import detect_language  # the package's one py3langid model

    return detect_language(text)[0]


def _is_english(text: str) -> bool:
    """True when text reads as English; text without letters cannot be judged and passes.

    Passing the undecidable case mirrors the official scorer, which counts a langdetect failure as
    following. All-caps text needs no care here: py3langid lowercases it before classifying.
    """
    return _language(text) in ("en", "und")


# ---------------------------------------------------------------- checkers, one per instruction


def no_comma(response: str) -> bool:
    """punctuation:no_comma: no "," anywhere."""
    return "," not in response


def number_words(response: str, *, num_words: int, relation: str) -> bool:
    """length_constraints:number_words: the count of \\w+ runs compared with num_words."""
    return _compare(len(_WORD.findall(response)), relation, num_words)


def number_sentences(response: str, *, num_sentences: int, relation: str) -> bool:
    """length_constraints:number_sentences: the sentence count (see `_sentences`) compared."""
    return _compare(len(_sentences(response)), relation, num_sentences)


def number_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """length_constraints:number_paragraphs: exactly N paragraphs separated by the Markdown divider ***.

    An empty piece before the first or after the last divider is ignored; an empty paragraph
    between two dividers breaks the format.
    """
    parts = re.split(r"\s?\*\*\*\s?", response)
    inner = parts[1:-1]
    if any(not p.strip() for p in inner):
        return False
    return sum(1 for p in parts if p.strip()) == num_paragraphs


def nth_paragraph_first_word(response: str, *, num_paragraphs: int, nth_paragraph: int,
                             first_word: str) -> bool:
    """length_constraints:nth_paragraph_first_word: N paragraphs split by blank lines, the nth starting with a word.

    The word is compared lowercased, without leading quotes and cut at the first punctuation mark,
    so "Summer," matches "summer".
    """
    paragraphs = [p.strip() for p in re.split(r"\n\n", response) if p.strip()]
    if len(paragraphs) != num_paragraphs or not 1 <= nth_paragraph <= len(paragraphs):
        return False
    word = paragraphs[nth_paragraph - 1].split()[0].lstrip("'\"")
    word = re.split(r"[.,?!'\"]", word, maxsplit=1)[0].lower()
    return word == first_word.strip().lower()


def english_lowercase(response: str) -> bool:
    """change_case:english_lowercase: every cased letter is lowercase and the text is English."""
    return response.islower() and _is_english(response)


def english_capital(response: str) -> bool:
    """change_case:english_capital: every cased letter is uppercase and the text is English."""
    return response.isupper() and _is_english(response)


def capital_word_frequency(response: str, *, capital_frequency: int, capital_relation: str) -> bool:
    """change_case:capital_word_frequency: the count of all-caps words compared with capital_frequency.

    Words come from NLTK's Treebank-style word tokenizer (regular expressions only, no data to
    download), like the official scorer's nltk.word_tokenize minus its punkt sentence split; that
    split only detaches sentence-final periods, which never change whether a word is all caps.
    """
    from nltk.tokenize import NLTKWordTokenizer

    words = NLTKWordTokenizer().tokenize(response)
    return _compare(sum(1 for w in words if w.isupper()), capital_relation, capital_frequency)


def json_format(response: str) -> bool:
    """detectable_format:json_format: the whole answer parses as JSON (a ```json fence is allowed)."""
    text = response.strip()
    text = re.sub(r"^```(?:json)?", "", text, flags=re.IGNORECASE)
    text = re.sub(r"```$", "", text).strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def title(response: str) -> bool:
    """detectable_format:title: a non-empty title in double angle brackets, <<like this>>."""
    return any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", response))


def multiple_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """detectable_format:multiple_sections: at least N headers "<splitter> <number>" (case-sensitive).

    The kwarg keeps IFEval's spelling, section_spliter, so that input_data rows pass through as they are.
    """
    marker = re.escape(section_spliter.strip())
    return len(re.split(r"\s?" + marker + r"\s?\d+\s?", response)) - 1 >= num_sections


def number_highlighted_sections(response: str, *, num_highlights: int) -> bool:
    """detectable_format:number_highlighted_sections: at least N non-empty *italic* or **bold** spans on one line."""
    single = [h for h in re.findall(r"\*[^\n*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", response) if h.strip("*").strip()]
    # "**bold**" yields no non-empty single-star span ("**" twice), so the two lists never count
    # the same highlight.
    return len(single) + len(double) >= num_highlights


def number_bullet_lists(response: str, *, num_bullets: int) -> bool:
    """detectable_format:number_bullet_lists: exactly N lines that start with "* " or "-" (Markdown bullets).

    "**Bold**" at the start of a line is not a bullet; a "---" rule is, as in the official scorer.
    """
    stars = re.findall(r"^\s*\*[^*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def constrained_response(response: str) -> bool:
    """detectable_format:constrained_response: contains one of "My answer is yes./no./maybe."."""
    return any(option in response.strip() for option in _tables()["constrained_responses"])


def number_placeholders(response: str, *, num_placeholders: int) -> bool:
    """detectable_content:number_placeholders: at least N [placeholders] in square brackets."""
    return len(re.findall(r"\[.*?\]", response)) >= num_placeholders


def postscript(response: str, *, postscript_marker: str) -> bool:
    """detectable_content:postscript: the marker ("P.S.", "P.P.S") appears, case-insensitive.

    A space may follow each period of the marker, so "P. S." counts as "P.S.".
    """
    pattern = "".join(re.escape(c) + (r"\s?" if c == "." else "") for c in postscript_marker.strip().lower())
    return re.search(pattern, response.lower()) is not None


def existence(response: str, *, keywords: list[str]) -> bool:
    """keywords:existence: every keyword occurs (case-insensitive, inside words too)."""
    return all(re.search(re.escape(k), response, flags=re.IGNORECASE) for k in keywords)


def frequency(response: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """keywords:frequency: occurrences of keyword (case-insensitive substring) compared with frequency."""
    count = len(re.findall(re.escape(keyword), response, flags=re.IGNORECASE))
    return _compare(count, relation, frequency)


def forbidden_words(response: str, *, forbidden_words: list[str]) -> bool:
    """keywords:forbidden_words: none of the words occurs as a whole word (case-insensitive)."""
    return not any(re.search(r"\b" + re.escape(w) + r"\b", response, flags=re.IGNORECASE)
                   for w in forbidden_words)


def letter_frequency(response: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    """keywords:letter_frequency: occurrences of one character (case-insensitive) compared with let_frequency."""
    if len(letter) != 1:
        raise fail(f"keywords:letter_frequency needs one character as letter, got {letter!r}",
                   "set kwargs letter to a single character such as \"e\"")
    return _compare(response.lower().count(letter.lower()), let_relation, let_frequency)


def response_language(response: str, *, language: str) -> bool:
    """language:response_language: py3langid identifies the answer as `language` (ISO 639-1).

    Text without letters cannot be identified and passes, as a langdetect failure does in the
    official scorer.
    """
    lang = _language(response)
    return lang in (language, "und")


def quotation(response: str) -> bool:
    """startend:quotation: the whole answer is wrapped in double quotes."""
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def end_checker(response: str, *, end_phrase: str) -> bool:
    """startend:end_checker: ends with end_phrase (case-insensitive; enclosing quotes and spaces ignored)."""
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """combination:repeat_prompt: starts by repeating the request word for word (case-insensitive)."""
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


def two_responses(response: str) -> bool:
    """combination:two_responses: two different answers separated by six asterisks ******."""
    parts = response.split("******")
    if any(not p.strip() for p in parts[1:-1]):
        return False  # an empty answer between two separators
    answers = [p.strip() for p in parts if p.strip()]
    return len(answers) == 2 and answers[0] != answers[1]


INSTRUCTIONS: dict[str, Callable[..., bool]] = {
    "punctuation:no_comma": no_comma,
    "length_constraints:number_words": number_words,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_paragraphs": number_paragraphs,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "change_case:english_lowercase": english_lowercase,
    "change_case:english_capital": english_capital,
    "change_case:capital_word_frequency": capital_word_frequency,
    "detectable_format:json_format": json_format,
    "detectable_format:title": title,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:number_highlighted_sections": number_highlighted_sections,
    "detectable_format:number_bullet_lists": number_bullet_lists,
    "detectable_format:constrained_response": constrained_response,
    "detectable_content:number_placeholders": number_placeholders,
    "detectable_content:postscript": postscript,
    "keywords:existence": existence,
    "keywords:frequency": frequency,
    "keywords:forbidden_words": forbidden_words,
    "keywords:letter_frequency": letter_frequency,
    "language:response_language": response_language,
    "startend:quotation": quotation,
    "startend:end_checker": end_checker,
    "combination:repeat_prompt": repeat_prompt,
    "combination:two_responses": two_responses,
}


# ---------------------------------------------------------------- scoring


def _arguments(instruction_id: str, kwargs: dict[str, Any] | None, prompt: str) -> dict[str, Any]:
    """The checker's keyword arguments: None values dropped, unknown or missing names reported."""
    if instruction_id not in INSTRUCTIONS:
        raise fail(f"unknown IFEval instruction id {instruction_id!r}",
                   f"use one of: {', '.join(sorted(INSTRUCTIONS))}")
    # IFEval's published rows (the Hugging Face copy especially) carry every kwarg name of every
    # instruction with None for the unused ones; only the set values belong to this instruction.
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    params = inspect.signature(INSTRUCTIONS[instruction_id]).parameters
    accepted = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(given) - set(accepted))
    missing = [name for name in accepted if name not in given]
    if unknown or missing:
        what = "; ".join(filter(None, [unknown and f"unknown {unknown}", missing and f"missing {missing}"]))
        raise fail(f"{instruction_id}: kwargs {given} do not fit ({what}) for prompt {prompt[:60]!r}",
                   f"give exactly {accepted or 'no kwargs'}")
    return given


def _loose_variants(response: str) -> list[str]:
    """The paper's loose versions: with the first, last or both lines removed, each also without "*".

    These forgive a chatty opener ("Sure, here it is:") or sign-off, and Markdown bold around words.
    The response itself is the first variant, so whatever passes strictly passes loosely.
    """
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return cut + [v.replace("*", "") for v in cut]


def check(response: str, instruction_ids: list[str], kwargs: list[dict[str, Any] | None],
          prompt: str = "") -> dict[str, list[bool]]:
    """Strict and loose pass/fail of one response for each instruction, in order.

    kwargs[i] belongs to instruction_ids[i]; `prompt` only labels errors (repeat_prompt reads its
    text from kwargs["prompt_to_repeat"], as IFEval rows carry it). An empty response fails all.
    """
    if len(kwargs) != len(instruction_ids):
        raise fail(f"{len(instruction_ids)} instruction ids but {len(kwargs)} kwargs entries "
                   f"for prompt {prompt[:60]!r}",
                   "give one kwargs dict per instruction id ({} for none)")
    variants = [v for v in _loose_variants(response) if v.strip()]
    strict, loose = [], []
    for instruction_id, kw in zip(instruction_ids, kwargs):
        args = _arguments(instruction_id, kw, prompt)
        fn = INSTRUCTIONS[instruction_id]
        strict.append(bool(response.strip()) and fn(response, **args))
        loose.append(any(fn(v, **args) for v in variants))
    return {"strict": strict, "loose": loose}


def score(rows: list[dict[str, Any]], responses: list[str]) -> dict[str, Any]:
    """The paper's four accuracies over IFEval rows (key, prompt, instruction_id_list, kwargs).

    prompt_* counts a prompt as passed only when all its instructions pass; inst_* counts every
    instruction on its own. per_prompt keeps each row's results for reports.
    """
    if len(rows) != len(responses):
        raise fail(f"{len(rows)} IFEval rows but {len(responses)} responses",
                   "give one response per row, in the rows' order")
    if not rows:
        raise fail("no IFEval rows to score", "pass at least one input_data row")
    per_prompt = []
    for i, (row, response) in enumerate(zip(rows, responses)):
        missing = [k for k in ("prompt", "instruction_id_list", "kwargs") if k not in row]
        if missing:
            raise fail(f"IFEval row {i} (key {row.get('key')!r}) lacks {missing}",
                       "use IFEval's input_data.jsonl rows: key, prompt, instruction_id_list, kwargs")
        result = check(response, row["instruction_id_list"], row["kwargs"], row["prompt"])
        per_prompt.append({"key": row.get("key", i), **result})
    n_inst = sum(len(p["strict"]) for p in per_prompt)
    accuracies = {}
    for mode in ("strict", "loose"):
        accuracies[f"prompt_{mode}"] = sum(all(p[mode]) for p in per_prompt) / len(per_prompt)
        accuracies[f"inst_{mode}"] = sum(sum(p[mode]) for p in per_prompt) / max(n_inst, 1)
    return {**accuracies, "per_prompt": per_prompt}
