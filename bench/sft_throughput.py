"""Benchmark: LoRA SFT throughput of the embedded SmolLM2 through `tunesmith.train`, fp32 vs bf16.

Each precision runs in its own process (so peak RSS is its own) on the quickstart data.
Writes bench/results/sft_throughput.json and .md. Usage:
    .venv/bin/python bench/sft_throughput.py [--steps 20] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
import tunesmith
from tunesmith.runs import read_manifest
precision, steps, batch, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = tunesmith.load_config(sys.argv[5], {"output_dir": out, "overwrite": True, "train.precision": precision,
      "train.max_steps": steps, "train.batch_size": batch, "train.eval_steps": 0, "train.save_steps": 10**6,
      "data.validation_fraction": 0.0, "train.logging_steps": 1})
t0 = time.time()
run_dir = tunesmith.train(cfg, show_progress=False)
r = read_manifest(run_dir)["result"]
print("RESULT " + json.dumps({"precision": precision, "steps": r["steps"], "train_seconds": r["train_seconds"],
      "tokens_per_s": r["tokens_per_s"],
      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
      "wall_seconds": round(time.time() - t0, 1)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions.split(","):
            out = subprocess.run([sys.executable, "-c", CHILD, precision, str(args.steps), str(args.batch_size), tmp,
                                  str(ROOT / "examples/quickstart/config.yaml")], capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                sys.exit(f"{precision} run failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(line[0][7:]))
            print(rows[-1], flush=True)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "steps": args.steps, "batch_size": args.batch_size,
            "model": "smollm2-135m-instruct (LoRA r=16, all-linear)",
            "data": "examples/quickstart/train.jsonl (~92 tokens/row)"}
    (results / "sft_throughput.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = ["| precision | steps | train s | tokens/s | peak RSS GB |", "|---|---|---|---|---|"]
    md += [f"| {r['precision']} | {r['steps']} | {r['train_seconds']} | {r['tokens_per_s']} | {r['peak_rss_gb']} |"
           for r in rows]
    (results / "sft_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
