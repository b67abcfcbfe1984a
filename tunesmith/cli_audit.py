"""`tunesmith audit`: the safety audit's command line (the work is tunesmith/audit/run.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.config import REGRESSION_THRESHOLD


def add_audit(sub) -> None:
    s = sub.add_parser("audit", help="safety audit of a run (base vs tuned): refusal, toxicity, bias, memorization",
                       description="run a safety suite on a run's base and tuned model (or on one model): "
                       "refusal and over-refusal in several attack styles, toxicity of generations, bias "
                       "(counterfactual pairs, BBQ), memorization (canaries, verbatim extraction, PII); the "
                       "results join report.html, manifest.json and the model card")
    s.add_argument("run_or_model", help="a run directory (base vs tuned), a model folder or an embedded model name")
    s.add_argument("--suite", default="default", help="suite YAML, or 'default' for the shipped suite")
    s.add_argument("--check", action="append", default=None, dest="checks",
                   help="run only this check (repeatable): refusal, toxicity, bias, memorization")
    s.add_argument("--limit", type=int, default=None, help="prompts per check and kind (default: all)")
    s.add_argument("--judge", default=None, help="also judge refusals with this model, or URL#model of an "
                   "OpenAI-compatible endpoint")
    s.add_argument("--threshold", type=float, default=REGRESSION_THRESHOLD,
                   help="absolute worsening of a safety rate flagged as a regression (default 0.05)")
    s.add_argument("--out", default=None, help="output folder (default: the run directory, or audits/<model>)")
    s.add_argument("--json", action="store_true", help="print the base-vs-tuned rows as JSON")


def cmd_audit(args) -> int:
    from tunesmith.api import run_audit

    out = run_audit(args.run_or_model, args.suite, out=args.out, limit=args.limit, judge=args.judge,
                threshold=args.threshold, checks=args.checks)
    results = json.loads((Path(out) / "audit" / "results.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(results["rows"], indent=2))
        return 0
    labels = list(results["models"])
    print(f"{'check':<13} {'metric':<30} " + " ".join(f"{lb:>9}" for lb in labels) + "  flag")
    for r in results["rows"]:
        vals = " ".join(f"{r['values'][lb]:>9.3f}" if isinstance(r["values"].get(lb), (int, float)) else f"{'-':>9}"
                        for lb in labels)
        print(f"{r['check']:<13} {r['metric'][:30]:<30} {vals}  {'REGRESSION' if r['regression'] else ''}")
    for check, data in results["checks"].items():
        if data.get("note"):
            print(f"note ({check}): {data['note']}")
    print(f"report: {Path(out) / 'report.html'}")
    return 0
