"""Benchmark: exact and near-duplicate detection on 100,000 short documents built from real text.

Background documents are 50-100 words stitched from random sentences of the shared data
(alpaca, alpaca-gpt4 demo, dolly, c4 demo, dialogsum, wiki demo). Into them we plant, after
their originals, near-duplicates (1-3 word edits: substitute, swap neighbours, delete) and exact
copies that differ only in case and whitespace. Everything is drawn from a fixed seed.

Reported: wall time and docs/s of `near_duplicates` (threshold 0.8) and `exact_duplicates`,
recall on the planted copies (all of them, and those whose true shingle Jaccard is >= the
threshold, since 3 edits in 50 words can push a copy below it), and the flagged pairs that
were not planted, split by their true Jaccard. Writes bench/results/near_dedup.json and .md.
Usage:
    .venv/bin/python bench/near_dedup.py [--docs 100000] [--near 5000] [--exact 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from tunesmith.data.dedup import exact_duplicates, near_duplicates, words  # noqa: E402

# (file, fields whose text we take); .txt files are read whole.
SOURCES = [
    ("alpaca/alpaca_data_rows_0000-0099.jsonl", ("instruction", "input", "output")),
    ("alpaca_gpt4_demo/alpaca_en_demo.jsonl", ("instruction", "input", "output")),
    ("dolly/dolly_sample.jsonl", ("instruction", "context", "response")),
    ("raw_text/c4_demo.jsonl", ("text",)),
    ("dialogsum/dialogsum.dev.jsonl", ("dialogue", "summary")),
    ("raw_text/wiki_demo.txt", ()),
]
THRESHOLD, NGRAM = 0.8, 5


def sentences() -> list[str]:
    """Every sentence of 4-30 words in the sources, deduplicated, in a fixed order.

    Longer "sentences" (unsplit paragraphs) would fill a whole document on their own, so two
    documents starting with the same one would be unplanted duplicates.
    """
    texts = []
    for rel, fields in SOURCES:
        path = DATA / rel
        if not path.exists():
            sys.exit(f"missing {path}: this benchmark reads ../shared/data beside the checkout")
        if not fields:
            texts.append(path.read_text(encoding="utf-8"))
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [row[f] for f in fields if isinstance(row.get(f), str)]
    split = (s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+|\n+", t))
    return sorted({s for s in split if 4 <= len(s.split()) <= 30})


def edit(doc: str, rng: random.Random, vocab: list[str]) -> str:
    """1-3 random word edits: substitute a word, swap two neighbours, or delete a word."""
    w = doc.split()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(w) - 1)
        op = rng.choice(("sub", "swap", "del"))
        if op == "sub":
            w[i] = rng.choice(vocab)
        elif op == "swap":
            w[i], w[i + 1] = w[i + 1], w[i]
        else:
            del w[i]
    return " ".join(w)


def respace(doc: str, rng: random.Random) -> str:
    """An exact copy up to case and whitespace (what `exact_duplicates(normalize=True)` ignores)."""
    w = doc.split()
    i = rng.randrange(len(w))
    w[i] = w[i].upper()
    return "  ".join(w[:3]) + " " + " ".join(w[3:]) + rng.choice(("\n", " ", "\t\n"))


def build(n_docs: int, n_near: int, n_exact: int, seed: int) -> tuple[list[str], list[int], dict[int, str]]:
    """Documents in order, the background document each one comes from, and which are planted how."""
    rng = random.Random(seed)
    pool = sentences()
    vocab = sorted({w for s in pool for w in s.split()})
    n_base = n_docs - n_near - n_exact
    base = []
    for _ in range(n_base):
        target, doc = rng.randint(50, 100), []
        while len(doc) < target:
            doc += rng.choice(pool).split()
        base.append(" ".join(doc[:target]))
    # Copies of 80% distinct originals, so some originals get two copies (clusters of three).
    originals = rng.sample(range(n_base), int(0.8 * (n_near + n_exact)))
    plants = [(rng.choice(originals), "near") for _ in range(n_near)] + \
             [(rng.choice(originals), "exact") for _ in range(n_exact)]
    # Order by a random key; a copy's key lies after its original's, so the original is kept.
    keyed = [(rng.random(), i, i, "") for i in range(n_base)]
    key_of = {i: k for k, i, _, _ in keyed}
    for orig, kind in plants:
        text = edit(base[orig], rng, vocab) if kind == "near" else respace(base[orig], rng)
        keyed.append((key_of[orig] + rng.random() * (1 - key_of[orig]), len(base), orig, kind))
        base.append(text)
    keyed.sort()
    docs = [base[j] for _, j, _, _ in keyed]
    group = [g for _, _, g, _ in keyed]
    planted = {pos: kind for pos, (_, _, _, kind) in enumerate(keyed) if kind}
    return docs, group, planted


def shingles(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i: i + NGRAM]) for i in range(len(w) - NGRAM + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def score(pairs: list[tuple], docs: list[str], group: list[int], planted: dict[int, str],
          kinds: tuple[str, ...]) -> dict:
    """Recall on the planted copies of `kinds`, and the flagged pairs that were not planted."""
    first_of = {}
    for pos, g in enumerate(group):
        first_of.setdefault(g, pos)
    targets = [p for p, k in planted.items() if k in kinds]
    true_j = {p: jaccard(docs[first_of[group[p]]], docs[p]) for p in targets}
    found = {p[0] for p in pairs if group[p[0]] == group[p[1]]}
    strong = [p for p in targets if true_j[p] >= THRESHOLD]
    very = [p for p in targets if true_j[p] >= 0.9]
    extra = [p for p in pairs if group[p[0]] != group[p[1]]]
    extra_true = sum(jaccard(docs[d], docs[k]) >= THRESHOLD for d, k, *_ in extra)
    return {
        "planted": len(targets),
        "found": sum(p in found for p in targets),
        "recall": round(sum(p in found for p in targets) / max(1, len(targets)), 4),
        "planted_true_jaccard_ge_threshold": len(strong),
        "recall_true_jaccard_ge_threshold": round(sum(p in found for p in strong) / max(1, len(strong)), 4),
        "planted_true_jaccard_ge_0.9": len(very),
        "recall_true_jaccard_ge_0.9": round(sum(p in found for p in very) / max(1, len(very)), 4),
        "flagged_pairs": len(pairs),
        "extra_pairs": len(extra),
        "extra_pairs_true_jaccard_ge_threshold": extra_true,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--near", type=int, default=5_000)
    ap.add_argument("--exact", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    docs, group, planted = build(args.docs, args.near, args.exact, args.seed)
    build_s = time.perf_counter() - t0
    words_per_doc = sum(len(d.split()) for d in docs) / len(docs)
    print(f"built {len(docs)} docs ({words_per_doc:.0f} words avg) in {build_s:.1f}s", flush=True)

    t0 = time.perf_counter()
    near = near_duplicates(docs, threshold=THRESHOLD, ngram=NGRAM)
    near_s = time.perf_counter() - t0
    print(f"near_duplicates: {near_s:.1f}s", flush=True)
    t0 = time.perf_counter()
    exact = exact_duplicates(docs)
    exact_s = time.perf_counter() - t0

    rows = [
        {"method": "near_duplicates", "threshold": THRESHOLD, "seconds": round(near_s, 2),
         "docs_per_s": round(len(docs) / near_s), **score(near, docs, group, planted, ("near", "exact"))},
        {"method": "near_duplicates (near-dup plants only)", "threshold": THRESHOLD, "seconds": round(near_s, 2),
         "docs_per_s": round(len(docs) / near_s), **score(near, docs, group, planted, ("near",))},
        {"method": "exact_duplicates", "threshold": None, "seconds": round(exact_s, 2),
         "docs_per_s": round(len(docs) / exact_s), **score([(d, k) for d, k in exact], docs, group, planted,
                                                           ("exact",))},
    ]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "datasketch": version("datasketch"),
            "docs": len(docs), "words_per_doc": round(words_per_doc, 1), "planted_near": args.near,
            "planted_exact": args.exact, "seed": args.seed, "ngram": f"word {NGRAM}-grams", "num_perm": 128,
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "build_seconds": round(build_s, 1)}
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "near_dedup.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    md = [f"{len(docs):,} docs, {words_per_doc:.0f} words avg; {args.near:,} planted near-duplicates (1-3 word "
          f"edits), {args.exact:,} planted exact copies (case/whitespace); {os.cpu_count()} CPUs, "
          f"datasketch {meta['datasketch']}, num_perm 128, word {NGRAM}-grams.", "",
          "Recall columns: found / planted, over all planted copies and over those whose true word 5-gram "
          "Jaccard with their original is >= 0.8 or >= 0.9 (count in brackets). \"Not planted\": flagged "
          "pairs whose two documents come from different originals.", "",
          "| method | seconds | docs/s | planted | recall | recall (true J >= 0.8) | recall (true J >= 0.9) "
          "| flagged | not planted | not planted, true J >= 0.8 |", "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['method']} | {r['seconds']} | {r['docs_per_s']:,} | {r['planted']:,} | {r['recall']} | "
           f"{r['recall_true_jaccard_ge_threshold']} ({r['planted_true_jaccard_ge_threshold']:,}) | "
           f"{r['recall_true_jaccard_ge_0.9']} ({r['planted_true_jaccard_ge_0.9']:,}) | "
           f"{r['flagged_pairs']:,} | {r['extra_pairs']} | {r['extra_pairs_true_jaccard_ge_threshold']} |"
           for r in rows]
    (results / "near_dedup.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
