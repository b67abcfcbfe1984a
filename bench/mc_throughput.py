"""Benchmark: multiple-choice scoring throughput of the embedded SmolLM2 (items/s), through the same
task code `tunesmith eval` runs.

1,000 items from the shared public samples (../shared/data, beside the checkout): every MMLU row there
(570 test + 285 dev, 4 single-token options " A".." D" after a lettered prompt) and the first 145
HellaSwag rows (4 sentence endings each). Accuracy is printed as a sanity check, not a target.
Writes bench/results/mc_throughput.json and .md. Usage:
    .venv/bin/python bench/mc_throughput.py [--batch-size 8] [--threads N] [--dtypes float32,bfloat16]
Each dtype is measured on the same 1,000 items (bfloat16 = what `tunesmith eval --dtype bfloat16` does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = [("mmlu", SHARED / "mmlu" / "mmlu_test_first10_per_subject.jsonl", 570),
        ("mmlu", SHARED / "mmlu" / "mmlu_dev.jsonl", 285),
        ("hellaswag", SHARED / "hellaswag" / "hellaswag_val_0000-0199.jsonl", 145)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=8, help="suite batch_size (scoring batches are 4x this)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma list of weight dtypes to measure")
    args = ap.parse_args()
    import torch

    from tunesmith.eval import tasks as T
    from tunesmith.inference import load

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load("smollm2-135m-instruct")
    rows, totals = [], {}
    for dtype in args.dtypes.split(","):
        loaded.model.to(getattr(torch, dtype))
        for preset, path, n in SETS:
            if not path.is_file():
                raise SystemExit(f"{path} is missing: this benchmark reads ../shared/data beside the checkout")
            spec = T.TaskSpec(**T.presets()[preset], name=preset, data=str(path), limit=n)
            t0 = time.perf_counter()
            result = T.run_choices(loaded, spec, T.read_rows(spec), args.batch_size)
            seconds = time.perf_counter() - t0
            rows.append({"dtype": dtype, "set": f"{preset} ({path.name})", "items": len(result.records),
                         "seconds": round(seconds, 2), "items_per_s": round(len(result.records) / seconds, 2),
                         "acc": round(result.metrics["acc"], 4), "acc_norm": round(result.metrics["acc_norm"], 4)})
            print(rows[-1], flush=True)
        mine = [r for r in rows if r["dtype"] == dtype]
        items, seconds = sum(r["items"] for r in mine), sum(r["seconds"] for r in mine)
        totals[dtype] = {"items": items, "seconds": round(seconds, 2), "items_per_s": round(items / seconds, 2)}
        print(f"{dtype}: {items} items in {seconds:.1f} s: {items / seconds:.2f} items/s", flush=True)
    summary = {"totals": totals, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "machine": platform.machine(), "sets": rows}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mc_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# Multiple-choice scoring throughput (SmolLM2-135M-Instruct, CPU)", "",
             f"`.venv/bin/python bench/mc_throughput.py --batch-size {args.batch_size}`; torch {torch.__version__}, "
             f"{summary['threads']} threads on {os.cpu_count()} cores.", "",
             "| weights | set | items | seconds | items/s | acc | acc_norm |", "|---|---|---:|---:|---:|---:|---:|"]
    for dtype, tot in totals.items():
        lines += [f"| {dtype} | {r['set']} | {r['items']} | {r['seconds']} | {r['items_per_s']} | {r['acc']} | "
                  f"{r['acc_norm']} |" for r in rows if r["dtype"] == dtype]
        lines.append(f"| {dtype} | **all** | **{tot['items']}** | **{tot['seconds']}** "
                     f"| **{tot['items_per_s']}** | | |")
    (out / "mc_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
