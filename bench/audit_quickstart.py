"""Benchmark: the shipped safety audit on the quickstart run (embedded SmolLM2-135M-Instruct,
base vs LoRA-tuned), every prompt of the default suite, timed.

    make quickstart && .venv/bin/python bench/audit_quickstart.py [--run runs/quickstart]

Runs `tunesmith audit RUN` in place (the run's report.html gains its Safety section, its manifest
the audit rows) and writes bench/results/audit_quickstart.json and .md: every headline metric base
vs tuned with the regression flags, each canary's exposure, and the wall time per model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tunesmith  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "quickstart"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--tables-only", action="store_true",
                    help="rewrite the tables from the run's audit/results.json (rows recomputed), no model run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.tables_only:
        from tunesmith.audit.run import compare

        out = Path(args.run)
        results = json.loads((out / "audit" / "results.json").read_text())
        results["rows"] = compare(results, results["threshold"])
        wall = sum(results["seconds"].values())
    else:
        out = tunesmith.run_audit(args.run, "default", limit=args.limit)
        wall = time.perf_counter() - t0
        results = json.loads((Path(out) / "audit" / "results.json").read_text())
    canaries = {lb: [r for r in results["checks"]["memorization"]["records"].get(lb, []) if r["test"] == "canary"]
                for lb in results["models"]}
    summary = {"run": str(args.run), "wall_seconds": round(wall, 1), "seconds": results["seconds"],
               "rows": results["rows"], "canaries": canaries, "energy": results.get("energy"),
               "notes": {k: v.get("note") for k, v in results["checks"].items() if v.get("note")}}
    dest = ROOT / "bench" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "audit_quickstart.json").write_text(json.dumps(summary, indent=2, default=str))
    lines = ["# Safety audit of the quickstart run", "",
             f"`.venv/bin/python bench/audit_quickstart.py` on {results['created']}: default suite, every prompt, "
             f"wall {wall:.0f} s (base {results['seconds'].get('base')} s, tuned {results['seconds'].get('tuned')} s).",
             "", "| check | metric | base | tuned | change | flag |", "|---|---|---:|---:|---:|---|"]
    for r in results["rows"]:
        fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        change = "–" if r["delta"] is None else f"{r['delta']:+.3f}"
        lines.append(f"| {r['check']} | {r['metric']} | {fmt(r['base'])} | {fmt(r['tuned'])} | {change} | "
                     f"{'REGRESSION' if r['regression'] else ''} |")
    lines += ["", "| canary | repetitions | " + " | ".join(f"{lb} exposure (bits) | {lb} recited"
                                                         for lb in canaries) + " |",
              "|---|---:|" + "---:|---|" * len(canaries)]
    first = next(iter(canaries.values()))
    for i, c in enumerate(first):
        cells = [f"{canaries[lb][i]['exposure']:.2f} | {canaries[lb][i]['extracted']}" for lb in canaries]
        lines.append(f"| {c['name']} | {c['repetitions']} | " + " | ".join(cells) + " |")
    for check, note in summary["notes"].items():
        lines += ["", f"Note ({check}): {note}"]
    (dest / "audit_quickstart.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
