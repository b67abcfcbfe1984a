"""Benchmark: structural validation of a 20,000-line file, as a user runs it (`tunesmith data validate`).

The goal (issue 11) is under a second on 2 cores for 20,000 lines, with no tokenizer or model
loaded. Files are made from the quickstart's rows (alpaca), the same rows as OpenAI chat, preference
pairs, and a classification CSV; one more alpaca file has 5% broken rows. Each is timed as a fresh
`python -m tunesmith.cli data validate FILE` process (wall time, Python start-up included, median of
`--repeats`) and in-process (check_files alone). Writes bench/results/validate_speed.json and .md.

    .venv/bin/python bench/validate_speed.py [--lines 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_files(folder: Path, n: int) -> dict[str, Path]:
    rng = random.Random(0)
    base = [json.loads(x) for x in (ROOT / "examples/quickstart/train.jsonl").read_text().splitlines()]
    rows = [base[i % len(base)] for i in range(n)]
    files = {}

    def write(name, lines):
        files[name] = folder / name
        files[name].write_text("".join(x + "\n" for x in lines), encoding="utf-8")

    write("alpaca.jsonl", [json.dumps(r) for r in rows])
    write("chat.jsonl", [json.dumps({"messages": [{"role": "system", "content": "You extract records."},
                                                  {"role": "user", "content": f"{r['instruction']}\n\n{r['input']}"},
                                                  {"role": "assistant", "content": r["output"]}]}) for r in rows])
    write("preference.jsonl", [json.dumps({"prompt": r["input"], "chosen": r["output"], "rejected": r["input"]})
                               for r in rows])
    write("classification.csv", ["text,label"] + [f'"{r["input"]}",{rng.choice(["pos", "neg", "neutral"])}'
                                                  for r in rows[:n - 1]])
    broken = [json.dumps(r) for r in rows]
    for i in rng.sample(range(n), n // 20):
        broken[i] = rng.choice([broken[i][:-3], json.dumps({**rows[i], "output": "  "}),
                                json.dumps({"instruction": rows[i]["instruction"]}), ""])
    write("alpaca_5pct_broken.jsonl", broken)
    return files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from tunesmith.data.validate import FileSpec, check_files

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in make_files(Path(tmp), args.lines).items():
            walls, rc = [], None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "data", "validate", str(path)],
                                      capture_output=True, text=True)
                walls.append(time.perf_counter() - t0)
                rc = proc.returncode
            t0 = time.perf_counter()
            v = check_files([FileSpec(str(path))])
            inproc = time.perf_counter() - t0
            results.append({"file": name, "lines": args.lines, "bytes": path.stat().st_size, "exit": rc,
                            "errors": len(v.errors), "warnings": v.report.n_warnings,
                            "cli_wall_s_median": round(statistics.median(walls), 3),
                            "cli_wall_s_min": round(min(walls), 3), "in_process_s": round(inproc, 3),
                            "lines_per_s_in_process": round(args.lines / inproc)})
            print(results[-1], flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "validate_speed.json").write_text(json.dumps({"results": results, "cpu_count": __import__("os").cpu_count()},
                                                        indent=2))
    md = ["| file | lines | MB | exit | errors | warnings | CLI wall s (median) | in-process s | lines/s |",
          "|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['file']} | {r['lines']} | {r['bytes'] / 1e6:.1f} | {r['exit']} | {r['errors']} | {r['warnings']} | "
           f"{r['cli_wall_s_median']} | {r['in_process_s']} | {r['lines_per_s_in_process']} |" for r in results]
    (out / "validate_speed.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
