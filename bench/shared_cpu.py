"""Benchmark: LoRA SFT throughput of the embedded SmolLM2 on a CPU shared with another process.

Each arm is a fresh process training on the quickstart data (as bench/sft_throughput.py), quiet
and then beside one CPU-bound competitor (`while True: pass`, started by this script a second
before the arm, killed after it, and ending itself after --competitor-limit seconds in any case):
  old: as before tunesmith chose threads: one per core, OpenMP's default wait policy (spin, then
       sleep), torch imported first so that nothing changes the policy;
  new: tunesmith's choice: threads = free cores (affinity, quota, other processes' load),
       re-measured every hardware.RECHECK_S seconds; OpenMP's default wait policy.
  passive: the same choice with OMP_WAIT_POLICY=PASSIVE set before torch loads (for comparison).
--late S adds an arm of the last behaviour listed whose competitor starts S seconds after the arm (the rechecks' case).
The ratio loaded/quiet is what a user sees when something else runs beside training; a fair share
of the cores is 1 - 1/cores. Writes bench/results/shared_cpu.json and .md. Usage:
    .venv/bin/python bench/shared_cpu.py [--steps 20] [--batch-size 8] [--late 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, os, sys, time
behaviour, steps, batch, precision, out, config = sys.argv[1:7]
if behaviour == "passive":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # before torch loads: OpenMP reads it once
threads = len(os.sched_getaffinity(0)) if behaviour == "old" else 0
import tunesmith
from tunesmith.runs import read_manifest
cfg = tunesmith.load_config(config, {"output_dir": out, "overwrite": True, "train.precision": precision,
      "train.max_steps": int(steps), "train.batch_size": int(batch), "train.eval_steps": 0, "train.save_steps": 10**6,
      "data.validation_fraction": 0.0, "train.logging_steps": 1, "train.threads": threads})
run_dir = tunesmith.train(cfg, show_progress=False)
m = read_manifest(run_dir)
r, t = m["result"], m["hardware"]["threads"]
print("RESULT " + json.dumps({"precision": m["precision"]["value"], "steps": r["steps"],
      "train_seconds": r["train_seconds"], "tokens_per_s": r["tokens_per_s"], "threads": t["threads"],
      "why": t["why"], "changes": t.get("changes", []), "omp_wait_policy": t["omp_wait_policy"]}))
"""
# Checks the clock once per million rounds: CPU-bound, and gone by itself if this script dies.
COMPETITOR = "import time, sys\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n" \
             "    for _ in range(1000000): pass\n"


def run_arm(behaviour: str, load: str, args, tmp: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    cmd = [sys.executable, "-c", CHILD, behaviour, str(args.steps), str(args.batch_size), args.precision, tmp,
           str(ROOT / "examples/quickstart/config.yaml")]
    competitor = None
    try:
        if load == "loaded":
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(args.competitor_limit)])
            time.sleep(1.0)  # running, and visible in /proc/stat, before the arm measures
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if load == "late":
            time.sleep(args.late)
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(args.competitor_limit)])
        out, err = child.communicate()
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    line = [x for x in out.splitlines() if x.startswith("RESULT ")]
    if child.returncode or not line:
        sys.exit(f"{behaviour}/{load} run failed:\n{err[-3000:]}")
    return {"behaviour": behaviour, "load": load, **json.loads(line[0][7:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--behaviours", default="old,new")
    ap.add_argument("--loads", default="quiet,loaded")
    ap.add_argument("--late", type=float, default=0.0, help="also a new arm whose competitor starts S s in (0: none)")
    ap.add_argument("--competitor-limit", type=float, default=1800.0, help="the competitor's own end, seconds")
    args = ap.parse_args()
    arms = [(b, load) for b in args.behaviours.split(",") for load in args.loads.split(",")]
    if args.late > 0:
        arms.append((args.behaviours.split(",")[-1], "late"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for behaviour, load in arms:
            rows.append(run_arm(behaviour, load, args, tmp))
            print(rows[-1], flush=True)
    quiet = {r["behaviour"]: r["tokens_per_s"] for r in rows if r["load"] == "quiet"}
    for r in rows:
        r["vs_quiet"] = round(r["tokens_per_s"] / quiet[r["behaviour"]], 3) if quiet.get(r["behaviour"]) else None
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "cpus": len(os.sched_getaffinity(0)), "steps": args.steps, "batch_size": args.batch_size,
            "late_start_s": args.late or None, "model": "smollm2-135m-instruct (LoRA r=16, all-linear)",
            "data": "examples/quickstart/train.jsonl (~92 tokens/row)",
            "competitor": "one `while True: pass` process at nice 0"}
    (results / "shared_cpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = ["| behaviour | competitor | precision | threads (end) | wait policy | tokens/s | loaded / quiet |",
          "|---|---|---|---|---|---|---|"]
    competitor = {"quiet": "none", "loaded": "from the start", "late": f"after {args.late:g} s"}
    md += [f"| {r['behaviour']} | {competitor[r['load']]} | {r['precision']} | {r['threads']} | {r['omp_wait_policy']}"
           f" | {r['tokens_per_s']} | {r['vs_quiet']} |" for r in rows]
    if quiet.get("old") and quiet.get("new"):  # what the new choice costs, or gains, when nothing else runs
        md.append(f"\nQuiet machine, new / old: {quiet['new'] / quiet['old']:.3f}")
    (results / "shared_cpu.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
