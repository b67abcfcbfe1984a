"""The quickstart: base vs fine-tuned SmolLM2 on held-out prompts, with a measured score.

Run with `make quickstart` (or `.venv/bin/python examples/quickstart/quickstart.py [key=value ...]`).
1. The base model answers 30 held-out prompts (people and names it never saw in training).
2. LoRA fine-tuning on train.jsonl (config.yaml beside this file).
3. The tuned model answers the same prompts.
A reply scores when it parses as JSON and equals the expected record exactly.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import tunesmith

HERE = Path(__file__).parent


def exact(reply: str, expected: dict) -> bool:
    try:
        return json.loads(reply) == expected
    except ValueError:
        return False


def fields_right(reply: str, expected: dict) -> int:
    try:
        got = json.loads(reply)
    except ValueError:
        return 0
    return sum(got.get(k) == v for k, v in expected.items()) if isinstance(got, dict) else 0


def answer(model, rows: list[dict]) -> list[str]:
    prompts = [f"{r['instruction']}\n\n{r['input']}" for r in rows]
    return tunesmith.generate(model, prompts, max_new_tokens=64)


def main(overrides: list[str]) -> int:
    t0 = time.time()
    cfg = tunesmith.load_config(HERE / "config.yaml", ["overwrite=true", *overrides])
    rows = [json.loads(line) for line in open(HERE / "heldout.jsonl")]

    print(f"[1/3] base model {cfg.model.name} on {len(rows)} held-out prompts", flush=True)
    base = answer(tunesmith.load(cfg.model.name), rows)

    print("[2/3] LoRA fine-tuning, then the eval: section's suite on base and tuned (eval-suite.yaml)", flush=True)
    run_dir = tunesmith.train(cfg)

    print(f"[3/3] tuned model {run_dir} on the same prompts", flush=True)
    tuned = answer(tunesmith.load(run_dir), rows)

    n_fields = sum(len(r["expected"]) for r in rows)
    score = {name: {"exact": sum(exact(a, r["expected"]) for a, r in zip(out, rows)),
                    "fields": sum(fields_right(a, r["expected"]) for a, r in zip(out, rows))}
             for name, out in (("base", base), ("tuned", tuned))}
    print()
    for r, b, t in list(zip(rows, base, tuned))[:5]:
        print(f"prompt: {r['input']}")
        print(f"  base : {b[:150]!r}  {'OK' if exact(b, r['expected']) else 'wrong'}")
        print(f"  tuned: {t[:150]!r}  {'OK' if exact(t, r['expected']) else 'wrong'}")
    wall = time.time() - t0
    print()
    for name, s in score.items():
        print(f"{name:>5}: {s['exact']}/{len(rows)} exact JSON records, {s['fields']}/{n_fields} fields right")
    print(f"wall time: {wall:.0f} s (model loads, base and tuned generation, training, evaluation)")
    print(f"report: {Path(run_dir) / 'report.html'} (base vs tuned, regressions flagged)")
    print(f"next: tunesmith audit {run_dir}  (safety: refusal, toxicity, bias, the planted canaries)")
    result = {"heldout": len(rows), "score": score, "wall_seconds": round(wall, 1),
              "samples": [{"input": r["input"], "base": b, "tuned": t} for r, b, t in zip(rows, base, tuned)]}
    (Path(run_dir) / "quickstart.json").write_text(json.dumps(result, indent=2))
    if score["tuned"]["exact"] <= score["base"]["exact"]:
        print("the tuned model did not beat the base model: something is wrong", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except tunesmith.TunesmithError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
