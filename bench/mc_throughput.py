"""Benchmark: multiple-choice scoring throughput of the embedded SmolLM2 (items/s), through the same
task code `tunesmith eval` runs.

1,000 items from the shared public samples (../shared/data, beside the checkout): every MMLU row there
(570 test + 285 dev, 4 single-token options " A".." D" after a lettered prompt) and the first 145
HellaSwag rows (4 sentence endings each). Accuracy is printed as a sanity check, not a target.
Writes bench/results/mc_throughput.json and .md. Usage:
    .venv/bin/python bench/mc_throughput.py [--batch-size 8] [--threads N] [--dtypes float32,bfloat16]
        [--arms shared,reference] [--limit N]
Each dtype is measured on the same 1,000 items (bfloat16 = what `tunesmith eval --dtype bfloat16` does).
Arms: `shared` is scoring.loglikelihoods (context run once per question, packed rows); `reference` is
scoring.loglikelihoods_reference (one row per unique input: the code before). Both run in the same
sitting, alternating (A B, then B A) set by set, so their ratio is comparable even on a busy machine.
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
    ap.add_argument("--arms", default="shared,reference", help="comma list of scoring paths: shared, reference")
    ap.add_argument("--limit", type=int, default=None, help="at most N items per set (a smoke run)")
    args = ap.parse_args()
    import torch

    from tunesmith.eval import scoring
    from tunesmith.eval import tasks as T
    from tunesmith.hardware import hardware_info
    from tunesmith.inference import load

    paths = {"shared": scoring.loglikelihoods, "reference": scoring.loglikelihoods_reference}
    arms = args.arms.split(",")

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load("smollm2-135m-instruct")
    rows, totals = [], {}
    for dtype in args.dtypes.split(","):
        loaded.model.to(getattr(torch, dtype))
        for s, (preset, path, n) in enumerate(SETS):
            if not path.is_file():
                raise SystemExit(f"{path} is missing: this benchmark reads ../shared/data beside the checkout")
            spec = T.TaskSpec(**T.presets()[preset], name=preset, data=str(path), limit=min(n, args.limit or n))
            # Arms alternate, in A B / B A order from set to set: both see the same machine load.
            for arm in arms if s % 2 == 0 else arms[::-1]:
                scoring.loglikelihoods = paths[arm]  # run_choices calls it through the module
                t0 = time.perf_counter()
                result = T.run_choices(loaded, spec, T.read_rows(spec), args.batch_size)
                seconds = time.perf_counter() - t0
                rows.append({"dtype": dtype, "arm": arm, "set": f"{preset} ({path.name})",
                             "items": len(result.records), "seconds": round(seconds, 2),
                             "items_per_s": round(len(result.records) / seconds, 2),
                             "acc": round(result.metrics["acc"], 4), "acc_norm": round(result.metrics["acc_norm"], 4)})
                print(rows[-1], flush=True)
        scoring.loglikelihoods = paths["shared"]
        for arm in arms:
            mine = [r for r in rows if r["dtype"] == dtype and r["arm"] == arm]
            items, seconds = sum(r["items"] for r in mine), sum(r["seconds"] for r in mine)
            totals[f"{dtype} {arm}"] = {"items": items, "seconds": round(seconds, 2),
                                        "items_per_s": round(items / seconds, 2)}
            print(f"{dtype} {arm}: {items} items in {seconds:.1f} s: {items / seconds:.2f} items/s", flush=True)
    summary = {"totals": totals, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "machine": platform.machine(),
               "hardware": hardware_info(), "sets": rows}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mc_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    cmd = " ".join(["bench/mc_throughput.py", f"--batch-size {args.batch_size}", f"--dtypes {args.dtypes}",
                    f"--arms {args.arms}"] + ([f"--limit {args.limit}"] if args.limit else []))
    lines = ["# Multiple-choice scoring throughput (SmolLM2-135M-Instruct, CPU)", "",
             f"`.venv/bin/python {cmd}`; torch {torch.__version__}, {summary['threads']} threads on "
             f"{os.cpu_count()} cores ({summary['hardware']['cpu']}). `shared`: the context runs once per "
             "question; `reference`: one row per unique input (the code before).", "",
             "| weights | arm | set | items | seconds | items/s | acc | acc_norm |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for key, tot in totals.items():
        dtype, arm = key.split()
        lines += [f"| {dtype} | {arm} | {r['set']} | {r['items']} | {r['seconds']} | {r['items_per_s']} | {r['acc']} | "
                  f"{r['acc_norm']} |" for r in rows if r["dtype"] == dtype and r["arm"] == arm]
        lines.append(f"| {dtype} | {arm} | **all** | **{tot['items']}** | **{tot['seconds']}** "
                     f"| **{tot['items_per_s']}** | | |")
    if "reference" in arms and "shared" in arms:
        lines += ["", "| weights | speed-up (shared / reference items/s) |", "|---|---:|"]
        for dtype in args.dtypes.split(","):
            ratio = totals[f"{dtype} shared"]["items_per_s"] / totals[f"{dtype} reference"]["items_per_s"]
            lines.append(f"| {dtype} | {ratio:.2f}x |")
    (out / "mc_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
