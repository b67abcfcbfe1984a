"""Exact and near-duplicate detection: known answers, the threshold, and datasketch parity."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tunesmith.data.dedup import exact_duplicates, minhash_signatures, near_duplicates, words
from tunesmith.errors import TunesmithError

PARAGRAPH = (
    "The river rose slowly through the night, and by morning the lower fields were under water. "
    "Farmers moved their animals to the hill behind the church, where the ground stayed dry. "
    "Nobody in the village could remember a flood like it, although the oldest residents spoke of "
    "one their grandparents had described, when the bridge was carried away and the mill stood "
    "idle for a whole season while the town rebuilt the road to the market.")
UNRELATED = (
    "To make a simple vinaigrette, whisk three parts olive oil with one part vinegar, then add a "
    "pinch of salt, some freshly ground pepper and a spoonful of mustard to help the mixture hold "
    "together. Taste it on a leaf of lettuce rather than from the spoon, because the dressing will "
    "seem much sharper on its own than it does on the salad you plan to serve.")


def replace_word(text: str, index: int, new: str) -> str:
    w = text.split()
    w[index] = new
    return " ".join(w)


def shingle_jaccard(a: str, b: str, n: int = 5) -> float:
    sa = {tuple(words(a)[i: i + n]) for i in range(len(words(a)) - n + 1)}
    sb = {tuple(words(b)[i: i + n]) for i in range(len(words(b)) - n + 1)}
    return len(sa & sb) / len(sa | sb)


# --- exact -----------------------------------------------------------------------------------------

def test_exact_duplicates_with_whitespace_and_case_variants():
    texts = ["Hello  World", "hello world\n", "HELLO\tWORLD ", "hello worlds", "Hello  World", "  hello world"]
    assert exact_duplicates(texts) == [(1, 0), (2, 0), (4, 0), (5, 0)]


def test_exact_duplicates_without_normalize_needs_identical_text():
    texts = ["Hello  World", "hello world\n", "Hello  World", "Hello World"]
    assert exact_duplicates(texts, normalize=False) == [(2, 0)]


def test_exact_duplicates_keeps_the_first_of_every_group():
    texts = ["b", "a", "B", "a", "c", "A ", "b"]
    assert exact_duplicates(texts) == [(2, 0), (3, 1), (5, 1), (6, 0)]
    assert exact_duplicates([]) == []


# --- near ------------------------------------------------------------------------------------------

def test_words_normalise_case_punctuation_and_unicode_forms():
    assert words("Ｈｅｌｌｏ, WORLD!  It’s\u00a0ﬁne.") == ["hello", "world", "it", "s", "fine"]


def test_one_changed_word_is_a_near_duplicate_and_an_unrelated_paragraph_is_not():
    edited = replace_word(PARAGRAPH, 30, "meadow")
    assert shingle_jaccard(PARAGRAPH, edited) > 0.85  # the premise: a one-word edit keeps J high
    pairs = near_duplicates([PARAGRAPH, UNRELATED, edited])
    assert [(d, k) for d, k, _ in pairs] == [(2, 0)]
    assert pairs[0][2] >= 0.8


def test_the_first_occurrence_is_kept_and_exact_copies_score_one():
    edited = replace_word(PARAGRAPH, 10, "evening")
    texts = [UNRELATED, edited, PARAGRAPH, PARAGRAPH.upper() + "  ", UNRELATED.replace(",", "")]
    pairs = near_duplicates(texts)
    assert [(d, k) for d, k, _ in pairs] == [(2, 1), (3, 1), (4, 0)]
    assert pairs[2][2] == 1.0  # punctuation is not part of the shingles


def test_word_order_matters():
    # The reversed paragraph has the same words and, window by window, the same 5-word bags: only an
    # order-sensitive n-gram hash tells it apart.
    backwards = " ".join(reversed(PARAGRAPH.split()))
    assert near_duplicates([PARAGRAPH, backwards], threshold=0.3) == []


def test_threshold_is_respected():
    # Three edits spread through the paragraph leave true 5-gram Jaccard near 0.6.
    edited = replace_word(replace_word(replace_word(PARAGRAPH, 8, "x1"), 30, "x2"), 55, "x3")
    assert 0.5 < shingle_jaccard(PARAGRAPH, edited) < 0.7
    assert near_duplicates([PARAGRAPH, edited], threshold=0.8) == []
    [(d, k, est)] = near_duplicates([PARAGRAPH, edited], threshold=0.4)
    assert (d, k) == (1, 0) and 0.4 <= est < 0.8


def test_threshold_one_reports_only_identical_shingle_sets():
    texts = [PARAGRAPH, PARAGRAPH + " !", replace_word(PARAGRAPH, 30, "meadow")]
    assert near_duplicates(texts, threshold=1.0) == [(1, 0, 1.0)]


def test_a_text_is_matched_only_with_kept_texts():
    # B is one edit from A, C one more edit from B (so two from A): B goes, and C stays although it is
    # close to B, because B is not kept. 512 permutations keep the estimates ~3 sd from 0.82.
    b = replace_word(PARAGRAPH, 20, "y1")
    c = replace_word(b, 50, "z1")
    assert shingle_jaccard(PARAGRAPH, b) == shingle_jaccard(b, c) == 67 / 77
    assert shingle_jaccard(PARAGRAPH, c) == 62 / 82
    assert [(d, k) for d, k, _ in near_duplicates([PARAGRAPH, b, c], threshold=0.82, num_perm=512)] == [(1, 0)]


def test_short_texts_fall_back_to_character_ngrams_and_empty_texts_are_skipped():
    texts = ["Best apple pie recipe", "best apple pie recipes", "Quick tomato soup", "", "  ...  ", ""]
    assert [(d, k) for d, k, _ in near_duplicates(texts, threshold=0.7)] == [(1, 0)]


def test_signatures_match_datasketch_minhash():
    from datasketch import MinHash

    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**32, size=250_001, dtype=np.uint64).astype(np.uint32)  # spans 3 blocks
    owners = np.sort(rng.integers(0, 5, size=len(hashes)))
    sig = minhash_signatures(hashes, owners, 6, num_perm=64, seed=7)
    for doc in range(6):  # doc 5 has no shingle: datasketch's empty MinHash
        m = MinHash(num_perm=64, seed=7, hashfunc=int)
        m.update_batch(hashes[owners == doc].tolist())
        assert np.array_equal(sig[doc], m.hashvalues), doc


def test_planted_near_duplicates_in_real_rows_are_found(shared_data):
    rows = [json.loads(line) for line in shared_data("alpaca_gpt4_demo/alpaca_en_demo.jsonl").open()]
    docs = [r["output"] for r in rows if 100 <= len(words(r["output"])) <= 200]
    rng = random.Random(0)
    planted = {}
    for orig in rng.sample(range(len(docs)), 20):
        w = docs[orig].split()
        w[rng.randrange(len(w))] = "zzzz"  # one substitution in 100+ words: true J >= 0.9
        planted[len(docs)] = orig
        docs.append(" ".join(w))
    pairs = near_duplicates(docs)
    assert all(est >= 0.8 for _, _, est in pairs)
    found = {d: k for d, k, _ in pairs}
    assert {d: found.get(d) for d in planted} == planted


def test_bad_arguments_are_reported_together():
    with pytest.raises(TunesmithError) as info:
        near_duplicates(["a"], threshold=1.5, ngram=0)
    assert "threshold=1.5" in str(info.value) and "ngram=0" in str(info.value)
