"""Eval-set contamination by shared 13-grams, on GSM8K questions planted in alpaca rows."""

from __future__ import annotations

import json

import pytest

from tunesmith.data.decontam import build_index, find_contamination, ngrams
from tunesmith.errors import TunesmithError

EVAL_ROWS = (0, 7, 42)  # GSM8K train rows used as the "eval set": 31, 85 and 49 words long


def test_ngrams_are_lowercase_words_without_punctuation():
    assert ngrams("Hello, World! It's", 2) == {("hello", "world"), ("world", "it"), ("it", "s")}
    assert ngrams("He paid $12.50 (cash).", 3) == {("he", "paid", "12"), ("paid", "12", "50"), ("12", "50", "cash")}
    assert ngrams("only four words here", 5) == set()


def test_index_maps_each_ngram_to_the_items_holding_it():
    index = build_index({"a": "one two three four", "b": "two three four five", "c": "x y"}, n=3)
    assert index == {("one", "two", "three"): {"a"}, ("two", "three", "four"): {"a", "b"},
                     ("three", "four", "five"): {"b"}, ("x", "y"): {"c"}}


@pytest.fixture
def gsm8k_eval(shared_data) -> dict[str, str]:
    rows = [json.loads(line) for line in shared_data("gsm8k/train_rows_0000-0499.jsonl").open()]
    return {f"gsm8k/{i}": rows[i]["question"] for i in EVAL_ROWS}


@pytest.fixture
def alpaca_texts(shared_data) -> list[str]:
    rows = [json.loads(line) for line in shared_data("alpaca/alpaca_data_rows_0000-0099.jsonl").open()]
    return ["\n".join([r["instruction"], r["input"], r["output"]]) for r in rows]


def test_exactly_the_planted_rows_are_reported_with_their_eval_ids(gsm8k_eval, alpaca_texts):
    q0, q7, q42 = gsm8k_eval["gsm8k/0"], gsm8k_eval["gsm8k/7"], gsm8k_eval["gsm8k/42"]
    train = list(alpaca_texts)
    train[5] = "Solve this word problem step by step: " + q0 + "\n" + train[5]
    train[17] = train[17] + "\nHere is a similar question. " + q7 + " Answer: 16 pounds."
    # Reformatted on the way in: upper-cased, punctuation dropped, spacing changed.
    train[63] = "Q:  " + q42.upper().replace(",", "").replace(".", " ") + "\nA: each monkey gets 99 bananas"
    train[80] = q42 + " Also: " + q0
    hits = find_contamination(train, build_index(gsm8k_eval))
    assert hits == [(5, ["gsm8k/0"]), (17, ["gsm8k/7"]), (63, ["gsm8k/42"]), (80, ["gsm8k/0", "gsm8k/42"])]


def test_clean_alpaca_rows_are_not_reported(gsm8k_eval, alpaca_texts):
    assert find_contamination(alpaca_texts, build_index(gsm8k_eval)) == []


def test_thirteen_shared_words_contaminate_and_twelve_do_not(gsm8k_eval):
    q = gsm8k_eval["gsm8k/7"].split()
    index = build_index(gsm8k_eval)
    rows = ["Unrelated opening words. " + " ".join(q[20:32]) + " and then something else entirely.",
            "Unrelated opening words. " + " ".join(q[20:33]) + " and then something else entirely."]
    assert find_contamination(rows, index) == [(1, ["gsm8k/7"])]


def test_short_texts_match_only_as_a_whole():
    # Short items (< n words) are keyed by their whole word sequence: a row that *is* the item
    # (after normalisation) is contaminated, a longer row that merely contains it is not.
    index = build_index({"short": "What is 2 + 2?", "long": " ".join(f"w{i}" for i in range(20))}, n=13)
    rows = ["what is 2+2", "Tell me: what is 2 + 2? Then explain why.", "What is 2 + 3?", "",
            " ".join(f"w{i}" for i in range(5, 18)), " ".join(f"w{i}" for i in range(5))]
    assert find_contamination(rows, index) == [(0, ["short"]), (4, ["long"])]


def test_an_index_built_with_another_n_is_refused():
    index = build_index({"a": " ".join(f"w{i}" for i in range(20))}, n=13)
    with pytest.raises(TunesmithError, match="13-grams but n=8"):
        find_contamination(["anything"], index, n=8)
    with pytest.raises(TunesmithError, match="n=0"):
        build_index({"a": "x"}, n=0)
