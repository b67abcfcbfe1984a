"""Benchmark: the data pipeline on 100,000 rows (validate -> clean -> dedup -> tokenize -> pack).

Rows are made by repeating and perturbing real instruction data from ../shared/data (alpaca,
alpaca-gpt4, dolly), with a fixed seed; ~5% are exact copies so dedup has work. Each stage is timed
on its own. Writes bench/results/data_pipeline.json and .md. Usage:
    .venv/bin/python bench/data_pipeline.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORDS = "quickly carefully today also really simply maybe often".split()


def source_rows() -> list[dict]:
    rows = []
    for rel in ("alpaca/alpaca_data_rows_0000-0099.jsonl", "alpaca_gpt4_demo/alpaca_en_demo.jsonl"):
        rows += [json.loads(x) for x in (SHARED / rel).read_text().splitlines()]
    for x in (SHARED / "dolly/dolly_sample.jsonl").read_text().splitlines():
        d = json.loads(x)
        rows.append({"instruction": d["instruction"], "input": d["context"], "output": d["response"]})
    return rows


def make_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    base = source_rows()
    made = []
    with open(path, "w") as f:
        for i in range(n):
            if made and rng.random() < 0.05:
                row = rng.choice(made)  # an exact duplicate
            else:
                src = rng.choice(base)
                words = src["instruction"].split()
                words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))  # perturb the instruction
                row = {"instruction": " ".join(words) + f" (#{i})", "input": src.get("input", ""),
                       "output": src["output"]}
                if len(made) < 2000:
                    made.append(row)
            f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--max-length", type=int, default=1024)
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"needs {SHARED}")
    from tunesmith.config import CleanConfig
    from tunesmith.data.curate import curate
    from tunesmith.data.load import load_examples
    from tunesmith.data.pack import pack
    from tunesmith.data.templates import tokenize_examples
    from tunesmith.models.loading import load_tokenizer, resolve

    tok = load_tokenizer(resolve("smollm2-135m-instruct"))
    stages = []

    def timed(name, fn, rows_in):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        stages.append({"stage": name, "rows": rows_in, "seconds": round(dt, 2), "rows_per_s": round(rows_in / dt)})
        print(stages[-1], flush=True)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        make_file(path, args.rows)
        examples = timed("validate+load", lambda: load_examples([str(path)]), args.rows)
        clean_cfg = CleanConfig(enabled=True, normalize=True, pii="report", dedup="exact")
        kept, report = timed("clean (normalize, quality, PII, exact dedup)", lambda: curate(examples, clean_cfg),
                             len(examples))
        rows, stats, _ = timed("tokenize (chat template + loss mask)",
                               lambda: tokenize_examples(tok, kept, args.max_length, "drop"), len(kept))
        packs, packing = timed("pack", lambda: pack(rows, args.max_length, tok.pad_token_id), len(rows))
    total = sum(s["seconds"] for s in stages)
    result = {"rows": args.rows, "kept_after_clean": len(kept), "dropped": report["dropped"],
              "tokens": stats.tokens, "tokens_per_s_tokenize": round(stats.tokens / stages[2]["seconds"]),
              "packing_efficiency": packing["efficiency"], "total_seconds": round(total, 1),
              "rows_per_s_end_to_end": round(args.rows / total), "stages": stages}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_pipeline.json").write_text(json.dumps(result, indent=2))
    md = ["| stage | rows | seconds | rows/s |", "|---|---|---|---|"]
    md += [f"| {s['stage']} | {s['rows']} | {s['seconds']} | {s['rows_per_s']} |" for s in stages]
    md.append(f"| **end to end** | {args.rows} | {result['total_seconds']} | {result['rows_per_s_end_to_end']} |")
    md.append(f"\ntokens: {stats.tokens} ({result['tokens_per_s_tokenize']} tokens/s in tokenize); packing "
              f"efficiency {packing['efficiency']:.1%}; dropped by clean: {report['dropped']}")
    (out / "data_pipeline.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
