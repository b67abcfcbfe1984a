"""Data augmentation: cheap seeded text noise, entity and synonym swaps, and model rewrites.

Every transform takes a `random.Random`, never the global one, so a seed gives the same output on
every machine. Text inside Markdown code fences, `inline code`, URLs, e-mail addresses and dotted
or slashed names (file.py, os.path, a/b) is never touched: changing a character there changes
what the code or link does, not how the prose is worded.

Table data live beside this file: entities.yaml (names, cities, countries), synonyms.yaml
(curated synonyms by part of speech, with why no PyPI thesaurus was used) and augment.yaml
(paraphrase and translation prompts).

`augment_examples` perturbs only what the user says by default and keeps the assistant's answer
as it is: the point of augmentation is that the model learns to give the *right* answer to
noisier or differently worded requests. A typo or a back-translation slip in the answer would
teach the model to produce them. The entity swap is the exception: it must change the answer
too, or the answer would talk about a person or place the question no longer mentions.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from tunesmith.data.clean import _segments  # the package's one Markdown fence splitter
from tunesmith.data.curate import map_texts, texts_of
from tunesmith.data.formats import Example
from tunesmith.errors import fail

__all__ = ["METHODS", "add_typos", "augment_examples", "back_translate", "drop_articles", "generate_replies",
           "load_entities", "load_synonyms", "paraphrase", "replace_synonyms", "swap_entities", "swap_entities_record"]

_HERE = Path(__file__).parent
# Spans that are never edited: inline code, URLs, e-mail addresses, and names joined by . / \ or
# : (file.py, os.path, and/or, 3.14, C:\x) which are identifiers or numbers rather than prose.
_PROTECTED = re.compile(r"(`[^`\n]+`|<?\b(?:https?|ftp)://[^\s<>]+|\bwww\.[^\s<>]+"
                        r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\w+(?:[./\\:]\w+)+)")
# A word for typos and synonyms: ASCII letters not glued to digits, underscores or apostrophes, so
# identifiers (my_var, x2) and contractions (don't) are left alone.
_WORD = re.compile(r"(?<![\w'])[A-Za-z]+(?![\w'])")
_ARTICLE = re.compile(r"(?<![\w'-])(a|an|the|A|An|The)[ \t]+(?=[A-Za-z])")
_SENTENCE_END = tuple(".!?:;\"'([{\n")


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise fail(f"rate={rate!r} is outside [0, 1]", "use a probability such as 0.1", field="rate")


def _pieces(text: str) -> list[tuple[bool, str]]:
    """`text` cut into (is_prose, piece) runs that join back to it exactly."""
    out: list[tuple[bool, str]] = []
    for n, (code, run) in enumerate(_segments(text.split("\n"))):
        if n:
            out.append((False, "\n"))
        chunk = "\n".join(run)
        if code:
            out.append((False, chunk))
            continue
        # The capturing group keeps the protected spans, at odd indices.
        out += [(i % 2 == 0, p) for i, p in enumerate(_PROTECTED.split(chunk)) if p]
    return out


def _map_prose(text: str, fn: Callable[[str], str]) -> str:
    """Apply `fn` to the prose pieces of `text`; fences, inline code and URLs pass through."""
    return "".join(fn(piece) if prose else piece for prose, piece in _pieces(text))


def _at_sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \t")
    return not before or before.endswith(_SENTENCE_END)


# --------------------------------------------------------------------------- character noise


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip in `word`; the first letter is kept, as in most real typos (and its case)."""
    swaps = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
    ops = ["drop", "duplicate"] + (["swap"] if swaps else [])
    op = rng.choice(ops)
    if op == "swap":
        i = rng.choice(swaps)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    i = rng.randrange(1, len(word))
    return word[:i] + word[i + 1:] if op == "drop" else word[:i] + word[i] + word[i:]


def add_typos(text: str, rate: float, rng: random.Random) -> str:
    """Swap, drop or double one letter in each word with probability `rate`.

    Only words of 3+ letters in lower or Title case are touched: a slip in "a" or "is" makes
    another word, and ALL-CAPS or CamelCase words are usually acronyms or identifiers.
    Whitespace is kept as it is.
    """
    _check_rate(rate)

    def noisy(m: re.Match) -> str:
        word = m.group()
        if len(word) < 3 or not (word.islower() or word.istitle()) or rng.random() >= rate:
            return word
        return _typo(word, rng)

    return _map_prose(text, lambda piece: _WORD.sub(noisy, piece))


def drop_articles(text: str, rate: float, rng: random.Random) -> str:
    """Drop each "a", "an" and "the" with probability `rate` (with the space after it).

    A capitalised article counts only at the start of a sentence ("Plan A is" keeps its A), and
    the word after a dropped one gets its capital: "The cat" -> "Cat".
    """
    _check_rate(rate)

    def in_piece(piece: str) -> str:
        out, last = [], 0
        for m in _ARTICLE.finditer(piece):
            article = m.group(1)
            if article[0].isupper() and not _at_sentence_start(piece, m.start()):
                continue
            if rng.random() >= rate:
                continue
            out.append(piece[last:m.start()])
            last = m.end()
            if article[0].isupper() and piece[last:last + 1].islower():
                out.append(piece[last].upper())
                last += 1
        return "".join(out) + piece[last:]

    return _map_prose(text, in_piece)


# --------------------------------------------------------------------------- entities


@cache
def _default_entities() -> dict:
    import yaml

    return yaml.safe_load((_HERE / "entities.yaml").read_text(encoding="utf-8"))


def load_entities(table: dict | None = None) -> dict[str, dict]:
    """{entity: {"type": ..., "country": ... (cities)}} from a table shaped like entities.yaml."""
    raw = table if table is not None else _default_entities()
    out: dict[str, dict] = {}
    for kind in ("female_names", "male_names"):
        for name in raw.get(kind) or []:
            out[name] = {"type": kind}
    for country, cities in (raw.get("countries") or {}).items():
        out[country] = {"type": "country"}
        for city in cities or []:
            out[city] = {"type": "city", "country": country}
    return out


def _entity_pattern(entities: dict) -> re.Pattern:
    # Longest first, so "New York" wins over a shorter entry that it starts with.
    names = sorted(entities, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")


def _entity_mapping(texts: list[str], rng: random.Random, entities: dict) -> dict[str, str]:
    """A one-to-one map for every entity found in `texts` (in order of first appearance).

    Targets never repeat and never name an entity already in the texts, so two different
    people never merge into one. Countries are mapped first, so that a city whose country is in
    the text moves to a city of the new country ("Lyon, France" -> "Osaka, Japan").
    """
    pattern = _entity_pattern(entities)
    found = dict.fromkeys(name for text in texts for prose, piece in _pieces(text) if prose
                          for name in pattern.findall(piece))
    used = set(found)
    mapping: dict[str, str] = {}

    def pick(name: str, pool: list[str]) -> None:
        pool = [x for x in pool if x not in used]
        if pool:
            mapping[name] = rng.choice(pool)
            used.add(mapping[name])

    by_type: dict[str, list[str]] = {}
    for name, info in entities.items():
        by_type.setdefault(info["type"], []).append(name)
    order = sorted(found, key=lambda n: entities[n]["type"] != "country")  # stable: countries first
    for name in order:
        info = entities[name]
        if info["type"] == "city" and info["country"] in mapping:
            home = mapping[info["country"]]
            same = [c for c in by_type["city"] if entities[c]["country"] == home and c not in used]
            if same:
                pick(name, same)
                continue
        pick(name, by_type[info["type"]])
    return mapping


def _apply_mapping(text: str, mapping: dict[str, str], entities: dict) -> str:
    if not mapping:
        return text
    pattern = _entity_pattern({k: entities[k] for k in mapping})
    return _map_prose(text, lambda piece: pattern.sub(lambda m: mapping[m.group()], piece))


def swap_entities(text: str, rng: random.Random, table: dict | None = None) -> str:
    """Replace first names, cities and countries (from entities.yaml or `table`) with others of the
    same type, the same one each time an entity repeats."""
    entities = load_entities(table)
    return _apply_mapping(text, _entity_mapping([text], rng, entities), entities)


def swap_entities_record(example: Example, rng: random.Random, table: dict | None = None) -> Example:
    """swap_entities over every text of a record with one mapping, so that the question and the
    answer (and every turn) still talk about the same people and places."""
    entities = load_entities(table)
    mapping = _entity_mapping(texts_of(example), rng, entities)
    return map_texts(example, lambda t: _apply_mapping(t, mapping, entities))


# --------------------------------------------------------------------------- synonyms


@cache
def _default_synonyms() -> dict:
    import yaml

    return yaml.safe_load((_HERE / "synonyms.yaml").read_text(encoding="utf-8"))


def load_synonyms(table: dict | None = None, pos: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """{word: replacements} from a table shaped like synonyms.yaml ({pos: {word: [synonyms]}}).

    A word listed under two parts of speech is refused: without a tagger we could not tell which
    of its uses a sentence has, so a replacement might not fit.
    """
    raw = table if table is not None else _default_synonyms()
    unknown = sorted(set(pos or ()) - set(raw))
    if unknown:
        raise fail(f"unknown part(s) of speech {unknown}", f"use some of {sorted(raw)}", field="pos")
    seen: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for part, words in raw.items():
        for word, synonyms in (words or {}).items():
            if word in seen:
                raise fail(f"synonym table lists {word!r} under both {seen[word]} and {part}",
                           "keep it under one part of speech, or remove it", field=f"{part}.{word}")
            seen[word] = part
            if pos is None or part in pos:
                out[word] = [s for s in synonyms if s != word]
    return out


def _match_case(replacement: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return replacement.upper()
    if like[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def replace_synonyms(text: str, rate: float, rng: random.Random, *, table: dict | None = None,
                     pos: tuple[str, ...] | None = None) -> str:
    """Replace each word found in the synonym table with probability `rate`, keeping its case.

    `pos` limits replacements to some parts of speech (e.g. ("adjective", "adverb")). A Title-case
    word inside a sentence is taken for a name and left alone ("the Red Sea" stays); "a"/"an" in
    front of a replaced word is fixed to suit it ("a big" -> "an enormous").
    """
    _check_rate(rate)
    synonyms = load_synonyms(table, pos)

    def in_piece(piece: str) -> str:
        out, last = [], 0
        for m in _WORD.finditer(piece):
            word = m.group()
            options = synonyms.get(word.lower())
            if not options or (word.istitle() and not _at_sentence_start(piece, m.start())):
                continue
            if rng.random() >= rate:
                continue
            new = _match_case(rng.choice(options), word)
            head = piece[last:m.start()]
            article = re.search(r"(?<![\w'])(an?|An?|AN?)([ \t]+)$", head)
            if article:  # "a" before a consonant sound, "an" before a vowel (letters: close enough)
                a = article.group(1)
                fixed = ("an" if new[0].lower() in "aeiou" else "a")
                fixed = fixed.upper() if a.isupper() and len(a) > 1 else _match_case(fixed, a)
                head = head[:article.start()] + fixed + article.group(2)
            out += [head, new]
            last = m.end()
        return "".join(out) + piece[last:]

    return _map_prose(text, in_piece)


# --------------------------------------------------------------------------- model rewrites

# A model as a function: (conversations, *, max_new_tokens, temperature, seed) -> one reply per
# conversation, e.g. tunesmith.inference.Generator(tunesmith.load(NAME)). Rewrites take one rather
# than load a model, so that this module never imports the model stage (or tunesmith.api).
Generate = Callable[..., list[str]]


@cache
def _prompts() -> dict:
    import yaml

    raw = yaml.safe_load((_HERE / "augment.yaml").read_text(encoding="utf-8"))
    raw["preambles"] = [re.compile(p, re.IGNORECASE) for p in raw["preambles"]]
    return raw


def _clean_reply(reply: str) -> str:
    """The rewritten text alone: announcing lines, labels and wrapping quotes removed."""
    text = reply.strip()
    for pattern in _prompts()["preambles"]:
        text = pattern.sub("", text, count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”" and text.count(text[0]) == 2:
        text = text[1:-1].strip()
    return text


def generate_replies(generate: Generate, prompts: list[str], *, max_new_tokens: int, temperature: float,
                     seed: int, batch_size: int = 8) -> list[tuple[str, bool]]:
    """(cleaned reply, cut) for each prompt, sent as a one-turn user conversation through
    `generate` in batches of `batch_size` (the seed moves on with each batch).

    `cut` says the reply used up all `max_new_tokens` and so stopped mid-sentence: half a
    paraphrase or half an answer is a worse training row than none, but the caller decides. Only
    a `generate` that can count tokens (`generate.count_tokens`, as inference.Generator can)
    tells a cut reply from a finished one; other functions' replies count as finished.
    """
    count_tokens = getattr(generate, "count_tokens", None)
    out: list[tuple[str, bool]] = []
    for i in range(0, len(prompts), batch_size):
        conversations = [[{"role": "user", "content": p}] for p in prompts[i:i + batch_size]]
        replies = generate(conversations, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + i)
        for reply in replies:
            # -1: decoding and re-encoding can merge the last two tokens into one.
            cut = count_tokens is not None and count_tokens(reply) >= max_new_tokens - 1
            out.append((_clean_reply(reply), cut))
    return out


def _whole(replies: list[tuple[str, bool]]) -> list[str]:
    return ["" if cut else text for text, cut in replies]


def paraphrase(texts: list[str], generate: Generate, *, max_new_tokens: int = 256, temperature: float = 0.7,
               seed: int = 0, batch_size: int = 8) -> list[str]:
    """A paraphrase of each text by a model's `generate` function; "" where it gave none."""
    template = _prompts()["paraphrase"]
    return _whole(generate_replies(generate, [template.format(text=t) for t in texts],
                                   max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                   batch_size=batch_size))


def back_translate(texts: list[str], generate: Generate, pivot: str = "French", *, source: str = "English",
                   max_new_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                   batch_size: int = 8) -> list[str]:
    """Each text translated into `pivot` and back by a model's `generate` function; "" where a
    step gave nothing.

    Greedy by default: the round trip itself is what rewords the text, and sampling on top of it
    mostly adds translation errors.
    """
    template = _prompts()["translate"]
    kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, batch_size=batch_size)
    there = _whole(generate_replies(generate, [template.format(text=t, source=source, target=pivot)
                                                   for t in texts], **kw))
    todo = [i for i, t in enumerate(there) if t and _in_language(t, pivot)]
    back = _whole(generate_replies(generate, [template.format(text=there[i], source=pivot, target=source)
                                                  for i in todo], **kw))
    out = [""] * len(texts)
    for i, text in zip(todo, back):
        out[i] = text if _in_language(text, source) else ""
    return out


def _in_language(text: str, language: str) -> bool:
    """False only when py3langid is confident that `text` is in another language than `language`.

    Small models often "translate" by copying the text, or answer in the wrong language; the same
    benefit of the doubt as clean.quality_reasons is given to short text.
    """
    from tunesmith.data.clean import MIN_LANGUAGE_CONFIDENCE, detect_language

    code = _prompts()["languages"].get(language)
    if code is None:
        return True
    found, confidence = detect_language(text)
    return found == code or confidence < MIN_LANGUAGE_CONFIDENCE


# --------------------------------------------------------------------------- records


METHODS = ("typos", "drop_articles", "swap_entities", "synonyms", "paraphrase", "back_translate")
_MODEL_METHODS = ("paraphrase", "back_translate")


def _map_prompt(ex: Example, fn: Callable[[str], str], answers: bool) -> Example:
    """A copy with `fn` applied to the user's turns (and a classification text); with `answers`,
    to every text of the record."""
    if answers:
        return map_texts(ex, fn)
    extra = dict(ex.extra)
    if ex.kind == "classification":
        extra["text"] = fn(extra["text"])
    messages = [{**m, "content": fn(m["content"])} if m.get("role") == "user" and isinstance(m.get("content"), str)
                else m for m in ex.messages or []] if ex.messages else ex.messages
    return Example(messages, ex.file, ex.line, ex.kind, extra)


def _eligible(ex: Example, answers: bool) -> bool:
    # Pre-training text has no prompt: noise there would be learned as the target.
    return answers or ex.kind == "classification" or any(m.get("role") == "user" for m in ex.messages or [])


def _check_methods(methods: list[str], fraction: float, generate: Generate | None) -> None:
    problems = []
    for m in methods:
        if m not in METHODS:
            close = difflib.get_close_matches(m, METHODS, n=1)
            problems.append(f"unknown method {m!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if not 0.0 <= fraction <= 1.0:
        problems.append(f"fraction={fraction!r} is outside [0, 1]")
    if generate is None and any(m in _MODEL_METHODS for m in methods):
        problems.append(f"methods {sorted(set(methods) & set(_MODEL_METHODS))} need a model")
    if problems:
        raise fail("; ".join(problems), f"methods are {', '.join(METHODS)}; for paraphrase and back_translate give "
                   "a model: --model NAME on the command line, model=NAME to tunesmith.api.data_augment, "
                   "generate= to augment_examples", field="augment")


def _rewrite_batch(chosen: list[Example], method: str, generate: Generate, answers: bool, seed: int,
                   pivot: str) -> list[Example | None]:
    """Model rewrites for every selected record in one batched call (None where one failed)."""
    texts: list[str] = []
    for ex in chosen:  # first pass: collect the texts in the order _map_prompt visits them
        _map_prompt(ex, lambda t: texts.append(t) or t, answers)
    if method == "paraphrase":
        new = paraphrase(texts, generate, seed=seed)
    else:
        new = back_translate(texts, generate, pivot, seed=seed)
    replies = iter(new)
    failed: list[str] = []

    def put_back(text: str) -> str:
        reply = next(replies)
        if not reply:
            failed.append(text)
        return reply or text

    out: list[Example | None] = []
    for ex in chosen:  # second pass: put the rewrites back in the same order
        failed.clear()
        copy = _map_prompt(ex, put_back, answers)
        out.append(None if failed else copy)
    return out


def augment_examples(examples: list[Example], *, methods: list[str], fraction: float, seed: int,
                     generate: Generate | None = None, rate: float = 0.1, answers: bool = False, pivot: str = "French",
                     entity_table: dict | None = None, synonym_table: dict | None = None
                     ) -> tuple[list[Example], dict]:
    """Augmented copies of a `fraction` of the records, for each method, and a report.

    Each method picks its own records (seeded by `seed` and the method's name, so adding a
    method does not change what another picks). Copies keep the source's file and line, and get
    extra["synthetic"] = True, extra["augmented_by"] = method. A copy that came out unchanged
    (no article to drop, no entity to swap) or that the model failed on is not returned, and is
    counted. Only the copies are returned: pass them with the originals to
    synth.finalize_synthetic to dedup and cap them. paraphrase and back_translate need `generate`
    (see Generate).
    """
    _check_methods(methods, fraction, generate)
    eligible = [i for i, ex in enumerate(examples) if _eligible(ex, answers)]
    text_fns = {
        "typos": lambda rng: lambda t: add_typos(t, rate, rng),
        "drop_articles": lambda rng: lambda t: drop_articles(t, rate, rng),
        "synonyms": lambda rng: lambda t: replace_synonyms(t, rate, rng, table=synonym_table),
    }
    out: list[Example] = []
    report: dict = {"records": len(examples), "eligible": len(eligible), "fraction": fraction, "seed": seed,
                    "answers_perturbed": answers, "methods": {}}
    for method in dict.fromkeys(methods):
        rng = random.Random(f"{seed}:{method}")  # str seeds hash with sha512: the same on every run
        picked = sorted(rng.sample(eligible, round(fraction * len(eligible))))
        chosen = [examples[i] for i in picked]
        if method in _MODEL_METHODS:
            copies = _rewrite_batch(chosen, method, generate, answers, seed, pivot)
        elif method == "swap_entities":
            copies = [swap_entities_record(ex, rng, entity_table) for ex in chosen]
        else:
            fn = text_fns[method](rng)
            copies = [_map_prompt(ex, fn, answers) for ex in chosen]
        counts = {"selected": len(chosen), "created": 0, "unchanged": 0, "failed": 0}
        for ex, copy in zip(chosen, copies):
            if copy is None:
                counts["failed"] += 1
            elif texts_of(copy) == texts_of(ex):
                counts["unchanged"] += 1
            else:
                copy.extra = {**copy.extra, "synthetic": True, "augmented_by": method,
                              "augmented_from": f"{ex.file}:{ex.line}"}
                out.append(copy)
                counts["created"] += 1
        report["methods"][method] = counts
    report["created"] = len(out)
    return out, report
