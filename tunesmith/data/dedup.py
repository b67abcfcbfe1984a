"""Find exact and near-duplicate training texts, keeping the first occurrence of each.

Exact: a hashlib digest of the (optionally normalised) text. Near: MinHash signatures of word
n-gram shingles, candidate pairs from datasketch's MinHashLSH, and every candidate checked
against the threshold on its estimated Jaccard before it is reported.

Both functions only *find* duplicates; dropping them is the caller's choice (the pairs say
which row to drop and which kept row it duplicates).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

from tunesmith.errors import Collector

_WORD = re.compile(r"\w+")
# Shingle hashes are fed to the MinHash in blocks of this many shingles: each block becomes a
# (block x num_perm) uint32 matrix, 128 perms -> ~50 MB, so memory stays flat however big the corpus.
_BLOCK_SHINGLES = 100_000
_U64 = np.uint64
_NGRAM_MULT = _U64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio) for the rolling n-gram hash
_LSH_WEIGHTS = (0.05, 0.95)  # (false positive, false negative) weights for MinHashLSH's band choice


def words(text: str) -> list[str]:
    """Normalised word tokens: NFKC, casefold, runs of letters/digits (punctuation dropped).

    NFKC folds look-alike code points (full-width letters, ligatures, non-breaking spaces) so that
    copies which only differ in typography compare equal; casefold is the Unicode-correct lower().
    """
    if not text.isascii():  # ASCII is already NFKC: skip the call (~20% of tokenizing)
        text = unicodedata.normalize("NFKC", text)
    return _WORD.findall(text.casefold())


def _digest(text: str, size: int = 8) -> bytes:
    # surrogatepass: text decoded with errors="surrogateescape" must hash, not crash.
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size).digest()


def exact_duplicates(texts: list[str], *, normalize: bool = True) -> list[tuple[int, int]]:
    """(duplicate_index, kept_index) for every text equal to an earlier one; the first is kept.

    With normalize, texts are compared after casefold and collapsing runs of whitespace (leading
    and trailing whitespace removed), so "Hello  World\\n" duplicates "hello world".
    """
    first: dict[bytes, int] = {}
    pairs = []
    for i, text in enumerate(texts):
        key = " ".join(text.casefold().split()) if normalize else text
        # A 128-bit digest, not hash(): hash() is salted per process, and a 64-bit one would
        # risk a false "duplicate" among billions of rows.
        kept = first.setdefault(_digest(key, 16), i)
        if kept != i:
            pairs.append((i, kept))
    return pairs


def _check_near_args(threshold: float, num_perm: int, ngram: int) -> None:
    problems = Collector("near_duplicates: bad arguments")
    if not 0.0 < threshold <= 1.0:
        problems.add(f"threshold={threshold!r} is outside (0, 1]", "use e.g. 0.8", field="threshold")
    if num_perm < 16:
        problems.add(f"num_perm={num_perm!r} is too small for a useful estimate", "use 128 (or 64 for speed)",
                     field="num_perm")
    if ngram < 1:
        problems.add(f"ngram={ngram!r} must be at least 1", "use 5 for documents", field="ngram")
    problems.raise_if_any()


def _word_shingles(tokens: list[list[str]], doc_ids: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the word n-grams of docs that have >= n words, and the doc id of each.

    Each distinct word is hashed once with blake2b; n-gram hashes are then a rolling polynomial
    of the word hashes, vectorised over the whole corpus: ~4x faster than joining and hashing
    each n-gram string (~1.5 µs per n-gram, 11 s for 100k documents of 75 words).
    """
    every = [w for doc in tokens for w in doc]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(every))}
    word_hash = np.frombuffer(b"".join(_digest(w) for w in vocab), dtype="<u8").astype(_U64)
    flat = word_hash[np.fromiter(map(vocab.__getitem__, every), dtype=np.int64, count=len(every))]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    starts = np.arange(len(flat) - n + 1)
    h = flat[: len(starts)].copy()
    for k in range(1, n):  # h = w0*M^(n-1) + w1*M^(n-2) + ... mod 2^64: order matters, as it should
        h = h * _NGRAM_MULT + flat[k: k + len(starts)]
    # Keep only n-grams that start far enough from the end of their own document.
    owner = np.repeat(np.asarray(doc_ids, dtype=np.int64), lengths)[: len(starts)]
    doc_start = np.repeat(np.cumsum(lengths) - lengths, lengths)[: len(starts)]
    last_start = np.repeat(lengths - n, lengths)[: len(starts)]
    keep = starts - doc_start <= last_start
    # The high half: in arithmetic mod 2^64 carries only move upwards, so the top bits depend on
    # every bit of every word hash, the low bits only on the low bits.
    return (h[keep] >> _U64(32)).astype(np.uint32), owner[keep]


def _char_shingles(texts: list[str], doc_ids: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fallback for texts with fewer than n words: character n-grams of the normalised text.

    Word n-grams would give such a text no shingle at all (or one, for the whole text), so a
    one-word edit would look like a different text. Character n-grams ("the c", "he ca", ...)
    keep short texts comparable with each other. They share no shingle with word n-grams of
    longer texts (beyond chance 32-bit hash collisions), so a short text is never matched with a
    long one.
    """
    hashes, owners = [], []
    for doc_id, text in zip(doc_ids, texts):
        grams = {text[i: i + n] for i in range(max(1, len(text) - n + 1))}
        hashes += [int.from_bytes(_digest(g, 4), "little") for g in grams]
        owners += [doc_id] * len(grams)
    return np.array(hashes, dtype=np.uint32), np.array(owners, dtype=np.int64)


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's finalizer, as datasketch's "affine32" scheme applies it before permuting.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def minhash_signatures(hashes: np.ndarray, owners: np.ndarray, num_docs: int, *, num_perm: int = 128,
                       seed: int = 1) -> np.ndarray:
    """(num_docs, num_perm) uint32 MinHash signatures from 32-bit shingle hashes and their owners.

    Bit-identical to datasketch `MinHash(num_perm, seed, hashfunc=int)` fed the same hashes with
    `update_batch` (the test checks this), but vectorised over many documents at once:
    `MinHash.bulk` does the same arithmetic one small array per document, ~3x slower on 20k
    documents of 75 words (measured with datasketch 2.0.0).
    `owners` must be sorted; a document with no shingle keeps the all-max "empty" signature.
    """
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    sig = np.full((num_docs, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    mixed = _fmix32(hashes.astype(np.uint32))
    for lo in range(0, len(mixed), _BLOCK_SHINGLES):
        hi = min(lo + _BLOCK_SHINGLES, len(mixed))
        # (num_perm, block): reduceat along the contiguous last axis is ~10x faster than along
        # axis 0. uint32 arithmetic wraps, which is the "mod 2^32" of the scheme.
        phv = np.multiply.outer(a, mixed[lo:hi])
        phv += b[:, None]
        seg_owner = owners[lo:hi]
        first = np.flatnonzero(np.r_[True, seg_owner[1:] != seg_owner[:-1]])
        # A document can straddle two blocks, so combine with what it already has.
        docs = seg_owner[first]
        sig[docs] = np.minimum(sig[docs], np.minimum.reduceat(phv, first, axis=1).T)
    return sig


def _shingle_corpus(texts: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = [words(t) for t in texts]
    long_ids = [i for i, t in enumerate(tokens) if len(t) >= ngram]
    short_ids = [i for i, t in enumerate(tokens) if 0 < len(t) < ngram]
    h1, o1 = _word_shingles([tokens[i] for i in long_ids], long_ids, ngram)
    h2, o2 = _char_shingles([" ".join(tokens[i]) for i in short_ids], short_ids, ngram)
    hashes, owners = np.concatenate([h1, h2]), np.concatenate([o1, o2])
    order = np.argsort(owners, kind="stable")
    return hashes[order], owners[order]


def near_duplicates(texts: list[str], *, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5,
                    seed: int = 1) -> list[tuple[int, int, float]]:
    """(duplicate_index, kept_index, estimated_jaccard) for texts that nearly repeat an earlier one.

    Shingles are word `ngram`-grams of `words(text)` (word 5-grams are the usual choice for
    documents: one edited word changes at most 5 shingles); texts with fewer than `ngram` words
    use character `ngram`-grams instead, and texts with no word at all are never reported.
    Texts are visited in order and each is compared only with texts kept so far, so the first of
    each cluster is kept and every reported pair has estimated Jaccard >= threshold (a chain
    A~B~C where C is not close to A keeps C). Exact duplicates are reported too, with 1.0.
    """
    from datasketch import LeanMinHash, MinHashLSH

    _check_near_args(threshold, num_perm, ngram)
    hashes, owners = _shingle_corpus(texts, ngram)
    sig = minhash_signatures(hashes, owners, len(texts), num_perm=num_perm, seed=seed)
    has_shingles = np.zeros(len(texts), dtype=bool)
    has_shingles[owners] = True

    # LSH only proposes candidates; the estimated Jaccard of each candidate decides. A false
    # candidate costs one vectorised comparison, a missed one is a duplicate left in the data, so
    # the bands are tuned for recall: datasketch's default (0.5, 0.5) weights give 9 bands x 13 rows
    # at 0.8, which finds only 40% of pairs at Jaccard 0.8; (0.05, 0.95) gives 16 x 8: 95%.
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    except ValueError:  # near 1.0 the optimum is one band, which datasketch refuses; two is closest
        lsh = MinHashLSH(num_perm=num_perm, params=(2, num_perm // 2))
    pairs = []
    for i in np.flatnonzero(has_shingles).tolist():
        m = LeanMinHash(seed=seed, hashvalues=sig[i], scheme="affine32")
        candidates = np.array(sorted(lsh.query(m)), dtype=np.int64)
        if len(candidates):
            est = (sig[candidates] == sig[i]).mean(axis=1)
            best = int(np.argmax(est))  # ties go to the earliest kept text (candidates are sorted)
            if est[best] >= threshold:
                pairs.append((i, int(candidates[best]), float(est[best])))
                continue
        lsh.insert(i, m, check_duplication=False)
    return pairs
