"""Find training rows that contain evaluation items: shared word n-grams (13-grams by default).

A training row is contaminated by an eval item when they share any n-gram of normalised words:
the 13-gram overlap that GPT-3 filtered its training data with (Brown et al. 2020, appendix C) and
that lm-evaluation-harness's decontamination uses. 13 words are long enough that a shared run is
almost never chance, and short enough to catch an item embedded in a longer row (a question with
a prompt before it and an answer after).

Texts shorter than n words have no n-gram. For them the whole normalised word sequence stands in
for the n-gram: a short eval item contaminates a row whose whole text is that item (after
normalisation), and a short training row is contaminated only by an eval item equal to it. A short
item found *inside* a longer row is not reported: a 5-word item such as "What is the capital of
France?" occurs in many innocent texts, which is why the n-gram length exists at all.

lm-evaluation-harness's Janitor cuts contaminated spans out of training text, and its harness
checks eval documents against pre-built n-gram files; neither says which eval items a training
row contains, which is what a data report needs, so the index here is a plain dict of n-grams.
"""

from __future__ import annotations

from tunesmith.data.dedup import words
from tunesmith.errors import fail


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of `text`, after NFKC, casefold and dropping punctuation.

    Punctuation is dropped because copies of eval items are reformatted on their way into training
    data (quotes straightened, "$12" written "12 $", a list turned into a sentence): the words
    survive, the punctuation does not. A text shorter than n words gives no n-gram.
    """
    w = words(text)
    return {tuple(w[i: i + n]) for i in range(len(w) - n + 1)}


def _keys(text: str, n: int) -> set[tuple[str, ...]]:
    """The n-grams of a text, or its whole word sequence when it has 1..n-1 words.

    A key shorter than n can only equal another short text's whole sequence, never an n-gram,
    so one dict holds both kinds without confusion.
    """
    w = words(text)
    if len(w) >= n:
        return {tuple(w[i: i + n]) for i in range(len(w) - n + 1)}
    return {tuple(w)} if w else set()


def build_index(eval_items: dict[str, str], n: int = 13) -> dict[tuple[str, ...], set[str]]:
    """Map each n-gram of the eval items (or a short item's whole word sequence) to the ids holding it."""
    if n < 1:
        raise fail(f"n={n!r} must be at least 1", "use 13 (the GPT-3 / lm-evaluation-harness choice)", field="n")
    index: dict[tuple[str, ...], set[str]] = {}
    for item_id, text in eval_items.items():
        for key in _keys(text, n):
            index.setdefault(key, set()).add(item_id)
    return index


def find_contamination(train_texts: list[str], index: dict[tuple[str, ...], set[str]],
                       n: int = 13) -> list[tuple[int, list[str]]]:
    """(row_index, sorted eval ids) for every training row sharing an n-gram with an eval item.

    `n` must be the one the index was built with: an index of longer n-grams is refused, but one of
    shorter n-grams cannot be told from short items and would silently find nothing in long rows.
    """
    longest = max(map(len, index), default=0)
    if longest > n:
        raise fail(f"the index holds {longest}-grams but n={n}", f"build the index and search it with the same n "
                   f"(build_index(..., n={longest}) or find_contamination(..., n={longest}))", field="n")
    hits = []
    for row, text in enumerate(train_texts):
        ids: set[str] = set()
        for key in _keys(text, n):
            ids.update(index.get(key, ()))
        if ids:
            hits.append((row, sorted(ids)))
    return hits
