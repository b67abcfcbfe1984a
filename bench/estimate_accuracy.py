"""Benchmark: how close `tunesmith validate --estimate` comes to the real run, in wall time and peak RSS.

For each case (the quickstart on the embedded SmolLM2 with some settings changed), first the estimate
(api.validate(..., estimate=True): a few timed steps in a child process), then the real run as the
user would start it (`python -m tunesmith.cli train CONFIG --quiet`, its own process: wall clock from
start to exit, peak RSS from os.wait4). Writes bench/results/estimate_accuracy.json and .md with
predicted vs actual and the error (target: within 25%). Usage:
    .venv/bin/python bench/estimate_accuracy.py                 # every case (~10 minutes when quiet)
    .venv/bin/python bench/estimate_accuracy.py --smoke         # one short case, to check the script
    .venv/bin/python bench/estimate_accuracy.py --cases lora-b8,dpo-lora
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
QUICKSTART = ROOT / "examples" / "quickstart" / "config.yaml"
# name -> (config, overrides). Step counts chosen so each real run takes about 30-90 s on a quiet CPU.
CASES = {
    "lora-b8": (QUICKSTART, {"train.precision": "bf16", "train.batch_size": 8, "train.max_steps": 40}),
    "lora-b16": (QUICKSTART, {"train.precision": "bf16", "train.batch_size": 16, "train.max_steps": 24}),
    "full-b8": (QUICKSTART, {"train.precision": "bf16", "train.method": "full", "train.batch_size": 8,
                             "train.max_steps": 24, "train.learning_rate": 2e-5}),
    "packing-b4": (QUICKSTART, {"train.precision": "bf16", "data.packing": True, "train.batch_size": 4,
                                "train.max_steps": 20}),
    "epochs-b8": (QUICKSTART, {"train.precision": "bf16", "train.max_steps": -1, "train.epochs": 1.0,
                               "train.batch_size": 8}),
    "dpo-lora": (ROOT / "configs" / "dpo-lora.yaml", {"train.max_steps": 20}),
}
SMOKE = {"smoke": (QUICKSTART, {"train.precision": "bf16", "train.batch_size": 4, "train.max_steps": 6,
                                "train.eval_steps": 3, "train.save_steps": 3})}


def run_case(name: str, config: Path, overrides: dict, tmp: Path) -> dict:
    from tunesmith.api import validate
    from tunesmith.config import load_config, to_dict
    from tunesmith.recipes import KINDS

    # Same config for both: no suite evaluation afterwards (the estimate leaves it out), a fresh output folder.
    cfg = load_config(config, {**overrides, "eval.suite": None, "output_dir": str(tmp / name), "overwrite": True})
    raw = to_dict(cfg)
    raw.pop("config_path", None)
    config_file = tmp / f"{name}.yaml"
    config_file.write_text(json.dumps(raw))  # JSON is YAML
    t0 = time.perf_counter()
    e = validate(cfg, kinds=KINDS[cfg.recipe], estimate=True)["estimate"]
    estimate_s = time.perf_counter() - t0
    if not e.get("supported"):
        return {"case": name, "skipped": e["message"]}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "train", str(config_file), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest of all children
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name}: the real run failed:\n{proc.stderr.read().decode()[-3000:]}")
    from tunesmith.runs import read_manifest, run_dir_for

    result = read_manifest(run_dir_for(cfg))["result"]
    actual_rss = usage.ru_maxrss * 1024
    return {"case": name, "steps": e["steps"], "actual_steps": result["steps"],
            "predicted_s": e["seconds"], "actual_s": round(wall, 1), "time_error_pct": _err(e["seconds"], wall),
            "predicted_s_per_step": e["seconds_per_step"],
            "actual_s_per_step": round(result["train_seconds"] / max(result["steps"], 1), 3),
            "predicted_rss_gb": round(e["peak_memory_bytes"] / 1e9, 2), "actual_rss_gb": round(actual_rss / 1e9, 2),
            "rss_error_pct": _err(e["peak_memory_bytes"], actual_rss), "estimate_cost_s": round(estimate_s, 1),
            "parts": e["time"]["parts"], "fits": e["fits"]}


def _err(predicted: float, actual: float) -> float:
    return round(100 * (predicted - actual) / actual, 1)


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = ["# `validate --estimate` accuracy", "",
             f"{meta['date']}, {meta['machine']}, {meta['cpus']} CPUs. Target: within 25%. Predicted = the "
             "estimate; actual = `tunesmith train` in its own process (wall clock to exit, peak RSS).", "",
             "| case | steps | wall predicted | wall actual | error | s/step pred / actual | peak RSS predicted | "
             "peak RSS actual | error | estimate cost |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | skipped: {r['skipped']} |||||||||")
            continue
        lines.append(f"| {r['case']} | {r['steps']} | {r['predicted_s']} s | {r['actual_s']} s | "
                     f"{r['time_error_pct']:+.1f}% | {r['predicted_s_per_step']} / {r['actual_s_per_step']} | "
                     f"{r['predicted_rss_gb']} GB | {r['actual_rss_gb']} GB | {r['rss_error_pct']:+.1f}% | "
                     f"{r['estimate_cost_s']} s |")
    done = [r for r in rows if "skipped" not in r]
    if done:
        worst_t = max(abs(r["time_error_pct"]) for r in done)
        worst_m = max(abs(r["rss_error_pct"]) for r in done)
        lines += ["", f"Worst error: wall {worst_t:.1f}%, peak RSS {worst_m:.1f}% "
                  f"({'within' if max(worst_t, worst_m) <= 25 else 'outside'} the 25% target)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--smoke", action="store_true", help="one short case; results go to estimate_accuracy_smoke.*")
    args = ap.parse_args()
    cases = SMOKE if args.smoke else {k: CASES[k] for k in args.cases.split(",")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, overrides) in cases.items():
            rows.append(run_case(name, config, overrides, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "model": "smollm2-135m-instruct", "cases": {k: v[1] for k, v in cases.items()}}
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stem = "estimate_accuracy_smoke" if args.smoke else "estimate_accuracy"
    (results / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (results / f"{stem}.md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))


if __name__ == "__main__":
    main()
