"""Augmentation: known answers for the seeded transforms, what they never touch, and records."""

from __future__ import annotations

import random
import re

import pytest

import tunesmith
from tunesmith.data.augment import (
    add_typos,
    augment_examples,
    back_translate,
    drop_articles,
    load_entities,
    load_synonyms,
    paraphrase,
    replace_synonyms,
    swap_entities,
    swap_entities_record,
)
from tunesmith.data.curate import texts_of
from tunesmith.data.formats import Example
from tunesmith.errors import TunesmithError

PROSE = "The quick brown fox jumps over the lazy dog near an old barn, and then a farmer shouts at it."
WITH_CODE = ("Please fix the function below so that the tests pass.\n\n"
             "```python\ndef the_answer(items):\n    return sorted(items)  # keep the order\n```\n"
             "See https://example.com/the/docs and `the_value` in utils.py for the details.")


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


def chat(user: str, answer: str, line: int = 1, system: str | None = None) -> Example:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return Example(messages, "train.jsonl", line)


def protected_parts(text: str) -> list[str]:
    fence = re.search(r"```.*?```", text, re.DOTALL).group()
    return [fence, "https://example.com/the/docs", "`the_value`", "utils.py"]


# --------------------------------------------------------------------------- typos


def test_typos_known_answer_and_seeded():
    assert add_typos(PROSE, 0.5, rng(0)) == add_typos(PROSE, 0.5, rng(0))
    assert add_typos(PROSE, 0.5, rng(0)) != add_typos(PROSE, 0.5, rng(1))
    assert add_typos("Please check the spelling carefully", 1.0, rng(0)) == "Pllease chcek thee spellng caefully"


def test_typos_rate_zero_and_whitespace_kept():
    text = "Tabs\tand  double spaces\nand new lines   stay."
    assert add_typos(PROSE, 0.0, rng(0)) == PROSE
    noisy = add_typos(text, 1.0, rng(3))
    assert noisy != text
    assert re.findall(r"\s+", noisy) == re.findall(r"\s+", text)
    # One edit per word at most, and the first letter (so its case) is always kept.
    for old, new in zip(text.split(), noisy.split()):
        assert old[0] == new[0] and abs(len(old) - len(new)) <= 1


def test_typos_never_inside_code_urls_or_identifiers():
    for seed in range(5):
        noisy = add_typos(WITH_CODE, 1.0, rng(seed))
        assert noisy != WITH_CODE
        for part in protected_parts(WITH_CODE):
            assert part in noisy
    # Acronyms, identifiers and contractions are left alone too.
    kept = "NASA snake_case don't x2y CamelCase"
    assert add_typos(kept, 1.0, rng(0)) == kept


def test_rates_outside_unit_interval_are_refused():
    with pytest.raises(TunesmithError, match="rate=1.5"):
        add_typos(PROSE, 1.5, rng())
    with pytest.raises(TunesmithError, match="rate=-0.1"):
        drop_articles(PROSE, -0.1, rng())


# --------------------------------------------------------------------------- articles


def test_drop_articles_all_and_none():
    assert drop_articles(PROSE, 1.0, rng()) == (
        "Quick brown fox jumps over lazy dog near old barn, and then farmer shouts at it.")
    assert drop_articles(PROSE, 0.0, rng()) == PROSE


def test_drop_articles_is_seeded_and_partial():
    text = " ".join(["the cat saw a dog and an owl."] * 10)
    some = drop_articles(text, 0.5, rng(0))
    assert some == drop_articles(text, 0.5, rng(0)) != drop_articles(text, 0.5, rng(1))
    assert 0 < len(re.findall(r"\b(the|a|an)\b", some)) < 30


def test_drop_articles_leaves_letters_names_and_code():
    assert drop_articles("Plan A is better. A plan is good.", 1.0, rng()) == "Plan A is better. Plan is good."
    dropped = drop_articles(WITH_CODE, 1.0, rng())
    assert "the tests" not in dropped and "the details" not in dropped
    for part in protected_parts(WITH_CODE):
        assert part in dropped


# --------------------------------------------------------------------------- entities


TABLE = {"female_names": ["Alice", "Emma", "Mia"], "male_names": ["Bob", "Omar", "Ravi"],
         "countries": {"France": ["Paris", "Lyon"], "Japan": ["Tokyo", "Osaka"], "Peru": ["Lima"]}}


def test_swap_entities_known_answer_is_consistent():
    text = "Alice met Bob in Paris. Later Alice showed Bob around Paris, France."
    swapped = swap_entities(text, rng(0), TABLE)
    assert swapped == swap_entities(text, rng(0), TABLE)
    names = re.findall(r"\b[A-Z]\w+\b", swapped)
    # Each entity maps to one new entity of its type, everywhere.
    alice, bob, paris, france = names[0], names[1], names[2], names[-1]
    assert swapped == (f"{alice} met {bob} in {paris}. Later {alice} showed {bob} around {paris}, {france}.")
    assert alice in ("Emma", "Mia") and bob in ("Omar", "Ravi") and france in ("Japan", "Peru")
    # The city moves with its country.
    assert paris in TABLE["countries"][france]


def test_swap_entities_whole_words_only_and_defaults():
    text = "Parisian cafes and non-Paris are not entities; Paris is."
    swapped = swap_entities(text, rng(1), TABLE)
    assert swapped == "Parisian cafes and non-Paris are not entities; Tokyo is."
    entities = load_entities()
    assert {"female_names", "male_names", "country", "city"} >= {e["type"] for e in entities.values()}
    assert swap_entities("Emma flew from Tokyo to Berlin.", rng(2)) != "Emma flew from Tokyo to Berlin."
    assert swap_entities("No entity here.", rng(2)) == "No entity here."


def test_swap_entities_record_is_consistent_across_messages():
    ex = chat("Where does Alice live? She moved from Lyon.", "Alice lives in Lyon, in France.",
              system="Answer about Alice briefly.")
    new = swap_entities_record(ex, rng(4), TABLE)
    system, user, answer = (m["content"] for m in new.messages)
    name = system.split()[2]
    city = user.split()[-1].rstrip(".")
    assert name != "Alice" and city != "Lyon"
    assert user == f"Where does {name} live? She moved from {city}."
    assert answer.startswith(f"{name} lives in {city}, in ")
    assert ex.messages[1]["content"].startswith("Where does Alice")  # the original is not changed


# --------------------------------------------------------------------------- synonyms


def test_synonyms_keep_capitalisation_and_fix_articles():
    table = {"adjective": {"big": ["enormous"], "important": ["significant"]}, "noun": {"car": ["automobile"]}}
    text = "Big cars are IMPORTANT. I saw a big car and A big dog."
    assert replace_synonyms(text, 1.0, rng(), table=table) == (
        "Enormous cars are SIGNIFICANT. I saw an enormous automobile and An enormous dog.")
    assert replace_synonyms(text, 1.0, rng(), table=table, pos=("noun",)) == (
        "Big cars are IMPORTANT. I saw a big automobile and A big dog.")
    assert replace_synonyms(text, 0.0, rng(), table=table) == text


def test_synonyms_skip_names_and_code():
    text = "The sea is huge, unlike the Red Sea.\n```\nhuge = 1\n```"
    out = replace_synonyms(text, 1.0, rng(0))
    assert out.startswith("The ocean is ") and out.endswith("unlike the Red Sea.\n```\nhuge = 1\n```")
    assert out == replace_synonyms(text, 1.0, rng(0))


def test_synonyms_are_seeded():
    text = " ".join(["The huge car was quickly repaired, which was important."] * 5)
    assert replace_synonyms(text, 0.5, rng(0)) != replace_synonyms(text, 0.5, rng(1))


def test_shipped_synonym_table_is_well_formed():
    synonyms = load_synonyms()
    assert len(synonyms) > 300
    for word, options in synonyms.items():
        assert word == word.lower() and options and word not in options
    with pytest.raises(TunesmithError, match="both adjective and noun"):
        load_synonyms({"adjective": {"fast": ["quick"]}, "noun": {"fast": ["diet"]}})
    with pytest.raises(TunesmithError, match="unknown part"):
        load_synonyms(pos=("adjectives",))


# --------------------------------------------------------------------------- records


def dataset(n: int = 20) -> list[Example]:
    return [chat(f"Tell me the story of Alice and the dog number {i} in Paris, please.",
                 f"Alice and the dog {i} lived in Paris for a long time.", line=i + 1) for i in range(n)]


def test_augment_examples_labels_counts_and_keeps_answers():
    data = dataset()
    out, report = augment_examples(data, methods=["typos", "drop_articles", "swap_entities", "synonyms"],
                                   fraction=0.5, seed=3, rate=0.5)
    again, _ = augment_examples(data, methods=["typos", "drop_articles", "swap_entities", "synonyms"],
                                fraction=0.5, seed=3, rate=0.5)
    assert [texts_of(e) for e in out] == [texts_of(e) for e in again]
    assert report["records"] == 20 and report["created"] == len(out)
    for _method, counts in report["methods"].items():
        assert counts["selected"] == 10
        assert counts["created"] + counts["unchanged"] + counts["failed"] == 10
    by_source = {(e.file, e.line): e for e in data}
    for ex in out:
        assert ex.extra["synthetic"] is True and ex.extra["augmented_by"] in report["methods"]
        source = by_source[(ex.file, ex.line)]
        if ex.extra["augmented_by"] == "swap_entities":
            assert "Alice" not in ex.messages[1]["content"]  # the answer follows the swap
        else:
            assert ex.messages[1] == source.messages[1]  # answers are never perturbed by default
            assert ex.messages[0] != source.messages[0]
    assert all("synthetic" not in e.extra for e in data)


def test_augment_examples_answers_option_and_kinds():
    data = dataset(4) + [Example(None, "pre.jsonl", 1, "text", {"text": "The plain text for pre-training."})]
    out, report = augment_examples(data, methods=["drop_articles"], fraction=1.0, seed=0, rate=1.0)
    assert report["eligible"] == 4 and len(out) == 4  # pre-training text has no prompt to perturb
    out, _ = augment_examples(data, methods=["drop_articles"], fraction=1.0, seed=0, rate=1.0, answers=True)
    assert len(out) == 5 and all("the" not in e.messages[1]["content"].split() for e in out if e.messages)


def test_augment_examples_refuses_bad_arguments():
    with pytest.raises(TunesmithError, match="did you mean 'typos'"):
        augment_examples(dataset(2), methods=["typo"], fraction=0.5, seed=0)
    with pytest.raises(TunesmithError, match="need a model"):
        augment_examples(dataset(2), methods=["paraphrase"], fraction=0.5, seed=0)
    with pytest.raises(TunesmithError, match="fraction=2"):
        augment_examples(dataset(2), methods=["typos"], fraction=2, seed=0)


# --------------------------------------------------------------------------- model rewrites (tiny model)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny model as the generate function that rewrites take."""
    from tunesmith.inference import Generator

    return Generator(tunesmith.load(tiny_model_dir))


def test_paraphrase_and_back_translate_shapes(tiny):
    texts = ["Tell me a joke about cats.", "What is two plus two?"]
    para = paraphrase(texts, tiny, max_new_tokens=8, seed=1)
    back = back_translate(texts, tiny, "German", max_new_tokens=8)
    assert len(para) == len(back) == 2 and all(isinstance(t, str) for t in para + back)
    assert para == paraphrase(texts, tiny, max_new_tokens=8, seed=1)


def test_augment_examples_with_a_model(tiny, monkeypatch):
    from tunesmith.data import augment

    # The random tiny model rarely stops before max_new_tokens, so it would fail every row: swap
    # in fixed replies to check the plumbing (batching, putting rewrites back, labels).
    replies = iter([f"Sure! Here is the paraphrase:\nA rewritten question number {i}." for i in range(99)])
    monkeypatch.setattr(augment, "generate_replies", lambda generate, prompts, **kw: [
        (augment._clean_reply(next(replies)), i % 3 == 0) for i, _ in enumerate(prompts)])
    out, report = augment_examples(dataset(6), methods=["paraphrase"], fraction=1.0, seed=0, generate=tiny)
    counts = report["methods"]["paraphrase"]
    assert counts == {"selected": 6, "created": 4, "unchanged": 0, "failed": 2}
    assert [e.messages[0]["content"] for e in out][:1] == ["A rewritten question number 1."]
    assert all(e.extra["augmented_by"] == "paraphrase" for e in out)
