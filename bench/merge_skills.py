"""Benchmark: two LoRA skills on the embedded SmolLM2-135M-Instruct, merged by each method of both kinds.

  records  the quickstart's skill: JSON records from a sentence (examples/quickstart/train.jsonl, 320
           rows) -> json_match on its 30 held-out prompts (names never seen)
  topic    AG News topic as a one-word answer (data.task_prompt on /work/shared/data/ag_news, rows
           0-599) -> exact_match on rows 600-(600+eval_rows), never trained on

Both parents train with the same LoRA rank on the same base; every method of `tunesmith merge`
(kind: adapters) then merges them with weights 1 and 1, and each merge is scored on both suites next
to the base and each parent. The ties merge goes through the eval gate (each parent's suite, tolerance
0.1, gate.cross on, --force), so its parents' columns come from the gate itself.

The full-model arm (kind: models, mergekit): each parent is exported (`tunesmith export RUN --format
hf`: base + adapter merged in fp32, parity-checked against the run), and the two RUN/export/hf folders
are merged by each mergekit method with base = the fp32 folder the parents trained on (the embedded
GGUF, dequantized; slerp reads no base: t 0.5 between the parents). Same suites, same rows.
"Kept" is how much of a parent's gain over the base the merge keeps: (merge - base) / (parent - base).

    .venv/bin/python bench/merge_skills.py [--methods ties,cat] [--model-methods ties,slerp] [--steps 60]
        [--eval-rows 60] [--work DIR [--reuse]]

--reuse (with --work) takes the parent runs and their exports from an earlier run in the same work
folder when they were trained with the same settings. Writes bench/results/merge_skills.json and .md.
Scores, not timings: a busy machine is only slower.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
AG_NEWS = ROOT.parent / "shared" / "data" / "ag_news" / "ag_news_sample1000.jsonl"
RESULTS = ROOT / "bench" / "results"
METHODS = ("ties", "ties_svd", "dare_ties", "dare_linear", "linear", "cat", "svd", "magnitude_prune")
MODEL_METHODS = ("linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "slerp", "model_stock")
BASE = "smollm2-135m-instruct"
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


def train_parents(work: Path, steps: int, reuse: bool) -> tuple[dict[str, Path], dict]:
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
        if reuse and _reusable(work / "runs" / name, steps):
            runs[name], seconds[name] = work / "runs" / name, "reused"
            print(f"bench: reusing {runs[name]}", file=sys.stderr, flush=True)
            continue
        t0 = time.time()
        runs[name] = tunesmith.train({**common, "name": name, "data": data}, show_progress=False)
        seconds[name] = round(time.time() - t0, 1)
        print(f"bench: trained {name} in {seconds[name]} s", file=sys.stderr, flush=True)
    return runs, seconds


def _reusable(run: Path, steps: int) -> bool:
    """A finished parent run of an earlier benchmark in the same work folder, trained as this one would be."""
    from tunesmith import runs
    from tunesmith.config import load_config

    if (runs.read_manifest(run) or {}).get("status") != "completed":
        return False
    cfg = load_config(run / runs.CONFIG_FILE)
    return (cfg.train.max_steps, cfg.lora.r, cfg.lora.alpha, cfg.seed) == (steps, LORA["r"], LORA["alpha"], 42)


def export_parents(runs: dict[str, Path], reuse: bool) -> tuple[dict[str, Path], dict]:
    """Each LoRA parent as a full checkpoint, the way a user gets one: `tunesmith export RUN --format hf`
    (base + adapter merged in fp32; its parity check compares the export's greedy replies with the run's).
    tunesmith.api's export, not `tunesmith.export`: once the merge has imported the subpackage
    tunesmith.export, that name is the subpackage, not the function."""
    from tunesmith.api import export

    folders, info = {}, {}
    for name, run in runs.items():
        done = run / "export" / "export_manifest.json"
        reused = reuse and done.is_file() and (run / "export" / "hf" / "config.json").is_file()
        if not reused:
            export(run, "hf")
        manifest = json.loads(done.read_text())
        folders[name] = run / "export" / "hf"
        info[name] = {"seconds": manifest["seconds"], "parity": manifest["parity"], "reused": reused}
        print(f"bench: {'reusing the export' if reused else 'exported'} {name} ({manifest['seconds']} s)",
              file=sys.stderr, flush=True)
    return folders, info


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


def model_merge_config(work: Path, method: str, folders: dict[str, Path], base: str) -> dict:
    """kind: models over the two exported parents. base: the fp32 folder both were trained on; slerp
    reads none (t 0.5: halfway from the records parent to the topic parent), linear does not need one."""
    from tunesmith.merge.config import NEEDS_BASE

    parents = [{"path": str(folders[name]), "weight": 1.0} for name in ("records", "topic")]
    return {"name": f"model-{method}", "output_dir": str(work / "merged"), "overwrite": True, "kind": "models",
            "method": method, "density": 0.5, "t": 0.5, "parents": parents,
            **({"base": base} if method in NEEDS_BASE else {})}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help="adapter methods (kind: adapters); '' for none")
    p.add_argument("--model-methods", default=",".join(MODEL_METHODS),
                   help="mergekit methods (kind: models) over the exported parents; '' for none")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per parent (batch 8)")
    p.add_argument("--eval-rows", type=int, default=60, help="held-out AG News rows scored")
    p.add_argument("--records-rows", type=int, default=30, help="held-out quickstart prompts scored (of 30)")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--reuse", action="store_true",
                   help="with --work: reuse its parent runs (same steps, LoRA and seed) and their exports")
    args = p.parse_args()
    if not AG_NEWS.is_file():
        sys.exit(f"bench: {AG_NEWS} is missing (the shared data folder beside the checkout)")
    if args.reuse and not args.work:
        sys.exit("bench: --reuse needs --work DIR (the folder of the earlier run)")
    work = Path(args.work or tempfile.mkdtemp(prefix="tunesmith-merge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    suites = write_inputs(work, args.eval_rows, args.records_rows)
    t_start = time.time()
    runs, train_seconds = train_parents(work, args.steps, args.reuse)
    rows = [{"model": "base (smollm2-135m-instruct)", "kind": "",
             **{s: score(BASE, suites[s], work / "evals" / f"base-{s}") for s in suites}}]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    gate = adapter_merges(work, methods, runs, suites, rows)
    if gate is None:  # ties not among the methods: the parents are scored directly
        for at, name in enumerate(("records", "topic"), start=1):
            rows.insert(at, {"model": f"parent: {name}", "kind": "adapter",
                            **{s: score(runs[name], suites[s], work / "evals" / f"{name}-{s}") for s in suites}})
    model_methods = [m.strip() for m in args.model_methods.split(",") if m.strip()]
    exports = None
    if model_methods:
        folders, exports = export_parents(runs, args.reuse)
        model_merges(work, model_methods, folders, suites, rows)
    _keep(rows)
    write(rows, gate, exports, args, train_seconds, round(time.time() - t_start, 1))
    return 0


def adapter_merges(work: Path, methods: list[str], runs: dict, suites: dict, rows: list[dict]) -> dict | None:
    """kind: adapters by each method; adds the parents' rows from the ties merge's gate. Returns that gate."""
    from tunesmith.merge.run import run_merge

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
                rows.append({"model": f"parent: {name}", "kind": "adapter", **{s: values[s][name] for s in suites}})
            merged = {s: values[s]["merged"] for s in suites}
        else:
            merged = {s: score(run_dir, suites[s], work / "evals" / f"{method}-{s}") for s in suites}
        rows.append({"model": f"merge: {method}", "kind": "adapter", "merged_rank": manifest["merge"]["adapter"]["r"],
                     "seconds": round(time.time() - t0, 1), **merged})
        print(f"bench: adapters {method}: {merged}", file=sys.stderr, flush=True)
    return gate


def model_merges(work: Path, methods: list[str], folders: dict[str, Path], suites: dict, rows: list[dict]) -> None:
    """kind: models by each mergekit method over the exported parents, scored like the adapter merges.
    A merged checkpoint (fp32, about 540 MB) is deleted once scored; its run directory stays."""
    from tunesmith.merge.run import run_merge
    from tunesmith.models.loading import materialize, resolve

    base = str(materialize(resolve(BASE)))  # the fp32 weights the LoRA parents were trained on
    for method in methods:
        t0 = time.time()
        run_dir = run_merge(model_merge_config(work, method, folders, base), show_progress=False)
        merge_seconds = json.loads((run_dir / "manifest.json").read_text())["merge"]["seconds"]
        merged = {s: score(run_dir, suites[s], work / "evals" / f"model-{method}-{s}") for s in suites}
        rows.append({"model": f"merge: {method}", "kind": "model", "merge_seconds": merge_seconds,
                     "seconds": round(time.time() - t0, 1), **merged})
        shutil.rmtree(run_dir / "model")
        print(f"bench: models {method}: {merged}", file=sys.stderr, flush=True)


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


def write(rows: list[dict], gate: dict | None, exports: dict | None, args, train_seconds: dict,
          total: float) -> None:
    from importlib.metadata import version

    from tunesmith.hardware import hardware_info

    hw = hardware_info()
    machine = f"{hw.get('cpu_count')} cores, {hw.get('cpu')}"
    load = os.getloadavg()[0]
    flags = [] if args.methods == ",".join(METHODS) else [f"--methods '{args.methods}'"]
    flags += [] if args.model_methods == ",".join(MODEL_METHODS) else [f"--model-methods '{args.model_methods}'"]
    flags += ["--reuse"] if args.reuse and any(v == "reused" for v in train_seconds.values()) else []
    command = " ".join(["`.venv/bin/python bench/merge_skills.py", *flags, f"--steps {args.steps}",
                        f"--eval-rows {args.eval_rows}", f"--records-rows {args.records_rows}`"])
    out = {"machine": machine, "load_at_end": round(load, 2), "command": command, "steps": args.steps,
           "lora": LORA, "density": 0.5, "weights": [1.0, 1.0], "slerp_t": 0.5,
           "versions": {"peft": version("peft"), "mergekit": version("mergekit") if exports else None},
           "train_seconds": train_seconds, "exports": exports, "total_seconds": total, "rows": rows,
           "ties_gate": gate}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "merge_skills.json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"# Merging two LoRA skills of SmolLM2-135M-Instruct ({machine})", "", command, "",
          f"Parents: LoRA r={LORA['r']}, alpha {LORA['alpha']}, {args.steps} steps of batch 8 each on the same base. "
          "kind adapter: `tunesmith merge` kind: adapters (peft) of the two runs; kind model: kind: models "
          "(mergekit) of the two runs exported with `tunesmith export --format hf`, base = the fp32 base they "
          "trained on (slerp: none, t 0.5). Weights 1 and 1, density 0.5 where the method reads it. records: "
          f"json_match on the quickstart's {args.records_rows} held-out prompts; topic: exact_match on "
          f"{args.eval_rows} held-out AG News rows. kept: the merge's share of the parent's gain over the base.", "",
          "| model | kind | records json_match | topic exact_match | kept records | kept topic | merged rank |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        kept = [("–" if r.get(k) is None else f"{r[k]:.2f}") if r["model"].startswith("merge") else ""
                for k in ("kept_records", "kept_topic")]
        md.append(f"| {r['model']} | {r['kind']} | {r['records']:.3f} | {r['topic']:.3f} | {kept[0]} | {kept[1]} | "
                  f"{r.get('merged_rank', '')} |")
    if gate:
        md += ["", f"Gate of the ties merge (tolerance 0.1 per parent): {'passed' if gate['passed'] else 'FAILED'}"
               + (f" ({'; '.join(gate['failures'])})" if gate["failures"] else "") + "."]
    if exports:
        md += ["", "Exports (parity of RUN/export/hf against the run): " + "; ".join(
            f"{name} {e['seconds']} s, " + ", ".join(f"{q['candidate']} {'passed' if q['passed'] else 'FAILED'}"
                                                    for q in e["parity"]) for name, e in exports.items()) + "."]
    md += ["", f"Training {train_seconds} s; whole benchmark {total} s (load average {load:.2f} at the end)."]
    (RESULTS / "merge_skills.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
