"""Benchmark: two LoRA skills on the embedded SmolLM2-135M-Instruct, merged by each adapter method.

  records  the quickstart's skill: JSON records from a sentence (examples/quickstart/train.jsonl, 320
           rows) -> json_match on its 30 held-out prompts (names never seen)
  topic    AG News topic as a one-word answer (data.task_prompt on /work/shared/data/ag_news, rows
           0-599) -> exact_match on rows 600-(600+eval_rows), never trained on

Both parents train with the same LoRA rank on the same base; every method of `tunesmith merge`
(kind: adapters) then merges them with weights 1 and 1, and each merge is scored on both suites next
to the base and each parent. The ties merge goes through the eval gate (each parent's suite, tolerance
0.1, gate.cross on, --force), so its parents' columns come from the gate itself. "Kept" is how much
of a parent's gain over the base the merge keeps: (merge - base) / (parent - base).

    .venv/bin/python bench/merge_skills.py [--methods ties,cat] [--steps 60] [--eval-rows 60]

Writes bench/results/merge_skills.json and .md. Scores, not timings: a busy machine is only slower.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
AG_NEWS = ROOT.parent / "shared" / "data" / "ag_news" / "ag_news_sample1000.jsonl"
RESULTS = ROOT / "bench" / "results"
METHODS = ("ties", "ties_svd", "dare_ties", "dare_linear", "linear", "cat", "svd", "magnitude_prune")
TOPIC_PROMPT = "Topic of this news article? Answer with one word: World, Sports, Business or Sci/Tech.\n\n{text}"
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}


def write_inputs(work: Path, eval_rows: int, records_rows: int) -> dict:
    """The topic data split and both suites (YAML) in the work folder."""
    import yaml

    rows = AG_NEWS.read_text(encoding="utf-8").splitlines()
    (work / "topic-train.jsonl").write_text("\n".join(rows[:600]) + "\n")
    (work / "topic-eval.jsonl").write_text("\n".join(rows[600:600 + eval_rows]) + "\n")
    records = {"name": "records", "tasks": [{
        "name": "records", "type": "generation", "data": str(QUICKSTART / "heldout.jsonl"),
        "prompt": "{{ instruction }}\n\n{{ input }}", "reference": "{{ expected | tojson }}",
        "metrics": ["json_match"], "max_new_tokens": 64, "limit": records_rows}]}
    topic = {"name": "topic", "tasks": [{
        "name": "topic", "type": "generation", "data": str(work / "topic-eval.jsonl"),
        "prompt": TOPIC_PROMPT.replace("{text}", "{{ text }}"), "reference": "{{ label }}",
        "metrics": ["exact_match"], "max_new_tokens": 6}]}
    (work / "records.yaml").write_text(yaml.safe_dump(records, sort_keys=False))
    (work / "topic.yaml").write_text(yaml.safe_dump(topic, sort_keys=False))
    return {"records": work / "records.yaml", "topic": work / "topic.yaml"}


def train_parents(work: Path, steps: int) -> dict[str, Path]:
    import tunesmith

    common = {"output_dir": str(work / "runs"), "overwrite": True, "seed": 42, "lora": LORA,
              "energy": {"enabled": False},
              "train": {"method": "lora", "max_steps": steps, "batch_size": 8, "learning_rate": 5e-4,
                        "warmup_ratio": 0.05, "eval_steps": 0, "save_steps": 1000, "logging_steps": 10}}
    runs, seconds = {}, {}
    for name, data in (("records", {"train": [str(QUICKSTART / "train.jsonl")], "max_length": 256,
                                    "license": "Apache-2.0"}),
                       ("topic", {"train": [str(work / "topic-train.jsonl")], "max_length": 256,
                                  "task_prompt": TOPIC_PROMPT})):
        t0 = time.time()
        runs[name] = tunesmith.train({**common, "name": name, "data": data}, show_progress=False)
        seconds[name] = round(time.time() - t0, 1)
        print(f"bench: trained {name} in {seconds[name]} s", file=sys.stderr, flush=True)
    return runs, seconds


def score(target, suite: Path, out: Path) -> float:
    """The suite's one metric for one model (a run's tuned model, or a model name)."""
    import tunesmith

    folder = tunesmith.evaluate(target, suite, out=out, compare_base=False, show_progress=False,
                                energy={"enabled": False})
    task = json.loads((folder / "eval" / "results.json").read_text())["tasks"][0]
    (metrics,) = task["metrics"].values()
    return metrics["json_match" if "json_match" in metrics else "exact_match"]


def merge_config(work: Path, method: str, runs: dict, suites: dict | None) -> dict:
    parents = [{"path": str(runs[name]), "weight": 1.0,
                **({"eval_suite": str(suites[name]), "tolerance": 0.1} if suites else {})}
               for name in ("records", "topic")]
    return {"name": f"merge-{method}", "output_dir": str(work / "merged"), "overwrite": True, "kind": "adapters",
            "method": method, "density": 0.5, "parents": parents}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per parent (batch 8)")
    p.add_argument("--eval-rows", type=int, default=60, help="held-out AG News rows scored")
    p.add_argument("--records-rows", type=int, default=30, help="held-out quickstart prompts scored (of 30)")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = p.parse_args()
    if not AG_NEWS.is_file():
        sys.exit(f"bench: {AG_NEWS} is missing (the shared data folder beside the checkout)")
    from tunesmith.merge.run import run_merge

    work = Path(args.work or tempfile.mkdtemp(prefix="tunesmith-merge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    suites = write_inputs(work, args.eval_rows, args.records_rows)
    t_start = time.time()
    runs, train_seconds = train_parents(work, args.steps)
    rows = [{"model": "base (smollm2-135m-instruct)",
             **{s: score("smollm2-135m-instruct", suites[s], work / "evals" / f"base-{s}") for s in suites}}]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    gate = None
    for method in methods:
        t0 = time.time()
        gated = method == "ties"
        run_dir = run_merge(merge_config(work, method, runs, suites if gated else None), force=True,
                            show_progress=False)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        if gated:  # the gate evaluated both parents and the merge on both suites (gate.cross)
            gate = manifest["merge"]["gate"]
            side = json.loads((run_dir / "gate" / "results.json").read_text())["results"]
            values = {r["suite"]: {lb: _metric(m)
                                   for lb, m in r["tasks"][0]["metrics"].items()} for r in side.values()}
            for name in ("records", "topic"):
                rows.append({"model": f"parent: {name}", **{s: values[s][name] for s in suites}})
            merged = {s: values[s]["merged"] for s in suites}
        else:
            merged = {s: score(run_dir, suites[s], work / "evals" / f"{method}-{s}") for s in suites}
        rows.append({"model": f"merge: {method}", "merged_rank": manifest["merge"]["adapter"]["r"],
                     "seconds": round(time.time() - t0, 1), **merged})
        print(f"bench: {method}: {merged}", file=sys.stderr, flush=True)
    if gate is None:  # ties not among the methods: the parents are scored directly
        for name in ("records", "topic"):
            rows.insert(1, {"model": f"parent: {name}",
                            **{s: score(runs[name], suites[s], work / "evals" / f"{name}-{s}") for s in suites}})
    _keep(rows)
    write(rows, gate, args, train_seconds, round(time.time() - t_start, 1))
    return 0


def _metric(metrics: dict) -> float:
    return metrics["json_match"] if "json_match" in metrics else metrics["exact_match"]


def _keep(rows: list[dict]) -> None:
    """Each merge's share of each parent's gain over the base."""
    base = rows[0]
    parents = {r["model"].split(": ")[1]: r for r in rows if r["model"].startswith("parent")}
    for r in rows:
        if r["model"].startswith("merge"):
            for skill, parent in parents.items():
                gain = parent[skill] - base[skill]
                r[f"kept_{skill}"] = round((r[skill] - base[skill]) / gain, 3) if gain > 0 else None


def write(rows: list[dict], gate: dict | None, args, train_seconds: dict, total: float) -> None:
    from tunesmith.hardware import hardware_info

    hw = hardware_info()
    machine = f"{hw.get('cpu_count')} cores, {hw.get('cpu')}"
    load = os.getloadavg()[0]
    methods = [] if args.methods == ",".join(METHODS) else [f"--methods {args.methods}"]
    command = " ".join(["`.venv/bin/python bench/merge_skills.py", *methods, f"--steps {args.steps}",
                        f"--eval-rows {args.eval_rows}", f"--records-rows {args.records_rows}`"])
    out = {"machine": machine, "load_at_end": round(load, 2), "command": command, "steps": args.steps,
           "lora": LORA, "density": 0.5, "weights": [1.0, 1.0], "train_seconds": train_seconds,
           "total_seconds": total, "rows": rows, "ties_gate": gate}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "merge_skills.json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"# Merging two LoRA skills of SmolLM2-135M-Instruct ({machine})", "", command, "",
          f"Parents: LoRA r={LORA['r']}, alpha {LORA['alpha']}, {args.steps} steps of batch 8 each on the same base; "
          "merges: weights 1 and 1, density 0.5 where the method reads it. records: json_match on the "
          f"quickstart's {args.records_rows} held-out prompts; topic: exact_match on {args.eval_rows} held-out AG "
          "News rows. "
          "kept: the merge's share of the parent's gain over the base.", "",
          "| model | records json_match | topic exact_match | kept records | kept topic | merged rank |",
          "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        kept = [("–" if r.get(k) is None else f"{r[k]:.2f}") if r["model"].startswith("merge") else ""
                for k in ("kept_records", "kept_topic")]
        md.append(f"| {r['model']} | {r['records']:.3f} | {r['topic']:.3f} | {kept[0]} | {kept[1]} | "
                  f"{r.get('merged_rank', '')} |")
    if gate:
        md += ["", f"Gate of the ties merge (tolerance 0.1 per parent): {'passed' if gate['passed'] else 'FAILED'}"
               + (f" ({'; '.join(gate['failures'])})" if gate["failures"] else "") + "."]
    md += ["", f"Training {train_seconds} s; whole benchmark {total} s (load average {load:.2f} at the end)."]
    (RESULTS / "merge_skills.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
