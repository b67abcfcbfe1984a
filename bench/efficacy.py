"""Benchmark: what each preset reaches on held-out public data it was not tuned on, base vs tuned.

Every preset trains as shipped (tunesmith/presets/), given only its data; the judging rows are
never in a sweep or training file (bench/efficacy_data.py makes the splits and checks that).

  classify-small  MiniLM on 1,600 SST-2 rows ->
                  accuracy on 400 other SST-2 rows (target >= 0.86)
  cpt-domain      SmolLM2 LoRA on 80% of Tiny Shakespeare with train.time_budget: 10 ->
                  perplexity on the last 20% (target >= 30% lower, within 10 minutes)
  sft-format      SmolLM2 LoRA on the quickstart's 320 rows -> exact JSON records on its 30 held-out
                  prompts, names never seen (target >= 29/30); then HellaSwag (200) and MMLU dev (285)
                  multiple choice, base vs tuned (target: no drop larger than 2 points)
  dpo-small       SmolLM2 LoRA DPO on 500 HH-RLHF harmless-base pairs -> reward accuracy on 200
                  other pairs (target >= 0.60)

    .venv/bin/python bench/efficacy_data.py && .venv/bin/python bench/efficacy.py [--only a,b]

Writes bench/results/efficacy.json and .md (rows of an earlier run are kept for presets not rerun).
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
DATA = ROOT / "bench" / "efficacy_data"
SHARED = ROOT.parent / "shared" / "data"
QUICKSTART = ROOT / "examples" / "quickstart"
RESULTS = ROOT / "bench" / "results"
TARGETS = {"classify-small": "accuracy >= 0.86", "cpt-domain": "perplexity >= 30% lower, training <= 600 s",
           "sft-format": ">= 29/30 exact records", "sft-format MC": "no drop > 2 points",
           "dpo-small": "reward accuracy >= 0.60"}


def train(preset: str, out: Path, **sections) -> Path:
    import tunesmith

    cfg = {"preset": preset, "name": preset, "output_dir": str(out), "overwrite": True, **sections}
    return tunesmith.train(cfg, show_progress=False)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def sst2_accuracy(model_dir: Path, rows: list[dict]) -> float:
    """Accuracy of a classify run's model on SST-2 rows (sentence, label)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    labels = json.loads((model_dir / "labels.json").read_text())
    right = 0
    with torch.inference_mode():
        for i in range(0, len(rows), 64):
            batch = rows[i:i + 64]
            enc = tok([r["sentence"] for r in batch], padding=True, truncation=True, max_length=128,
                      return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).tolist()
            right += sum(str(r["label"]) == labels[p] for r, p in zip(batch, pred))
    return right / len(rows)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def classify_small(out: Path) -> list[dict]:
    run_dir = train("classify-small", out, data={"train": [str(DATA / "sst2-train.jsonl")],
                                                  "columns": {"text": "sentence"}})
    judge = read_jsonl(DATA / "sst2-judge.jsonl")
    accuracy = sst2_accuracy(run_dir / "model", judge)
    majority = max(sum(r["label"] == 1 for r in judge), sum(r["label"] == 0 for r in judge)) / len(judge)
    m = manifest(run_dir)
    return [{"preset": "classify-small", "measure": "accuracy", "base": round(majority, 4),
             "base_is": "majority class (a new head has no skill)", "tuned": round(accuracy, 4),
             "rows": f"train: SST-2 sample rows 0-1599 (1,600); judge: rows 1600-1999 "
                     f"({len(judge)})", "train_seconds": m["result"]["train_seconds"], "steps": m["result"]["steps"],
             "met": accuracy >= 0.86}]


def _suite(path: Path, tasks: list[dict]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"name": path.stem, "batch_size": 8, "tasks": tasks}))
    return path


def _metrics(report_dir: Path) -> dict:
    results = json.loads((report_dir / "eval" / "results.json").read_text())
    labels = list(results["models"])
    return {t["name"]: {"base": t["metrics"][labels[0]], "tuned": t["metrics"][labels[-1]]} for t in results["tasks"]}


def cpt_domain(out: Path) -> list[dict]:
    import tunesmith

    run_dir = train("cpt-domain", out, data={"train": [str(DATA / "shakespeare-train.txt")]},
                    train={"time_budget": 10})
    suite = _suite(out / "cpt-judge.yaml", [{"name": "shakespeare", "type": "perplexity",
                                             "data": str(DATA / "shakespeare-judge.txt"), "max_length": 256}])
    got = _metrics(tunesmith.evaluate(run_dir, suite, show_progress=False))["shakespeare"]
    base, tuned = got["base"]["perplexity"], got["tuned"]["perplexity"]
    m = manifest(run_dir)
    seconds = m["result"]["train_seconds"]
    return [{"preset": "cpt-domain", "measure": "perplexity (256-token windows)", "base": round(base, 2),
             "tuned": round(tuned, 2), "change": f"{(tuned - base) / base:+.1%}",
             "rows": "train: Tiny Shakespeare sample, first 80% of its blocks; judge: the last 20%",
             "train_seconds": seconds, "steps": m["result"]["steps"], "auto": m.get("auto", {}),
             "met": tuned <= 0.7 * base and seconds <= 600}]


def sft_format(out: Path) -> list[dict]:
    import tunesmith

    sys.path.insert(0, str(QUICKSTART))
    from quickstart import answer, exact

    run_dir = train("sft-format", out, data={"train": [str(QUICKSTART / "train.jsonl")]})
    rows = read_jsonl(QUICKSTART / "heldout.jsonl")
    base = sum(exact(a, r["expected"]) for a, r in zip(answer(tunesmith.load("smollm2-135m-instruct"), rows), rows))
    tuned = sum(exact(a, r["expected"]) for a, r in zip(answer(tunesmith.load(run_dir), rows), rows))
    m = manifest(run_dir)
    first = {"preset": "sft-format", "measure": "exact JSON records", "base": f"{base}/{len(rows)}",
             "tuned": f"{tuned}/{len(rows)}", "rows": "train: examples/quickstart/train.jsonl (320, 5% held out for "
             "early stopping); judge: heldout.jsonl (30, names never seen)",
             "train_seconds": m["result"]["train_seconds"],
             "steps": m["result"]["steps"], "met": tuned >= 29}
    suite = _suite(out / "mc.yaml", [
        {"preset": "hellaswag", "data": str(SHARED / "hellaswag" / "hellaswag_val_0000-0199.jsonl"), "limit": 200},
        {"preset": "mmlu", "data": str(SHARED / "mmlu" / "mmlu_dev.jsonl"), "limit": 285}])
    got = _metrics(tunesmith.evaluate(run_dir, suite, show_progress=False))
    rows_mc = []
    for task, v in got.items():
        for metric in ("acc", "acc_norm"):
            b, t = v["base"][metric], v["tuned"][metric]
            rows_mc.append({"preset": "sft-format MC", "measure": f"{task} {metric}", "base": round(b, 4),
                            "tuned": round(t, 4), "change": f"{(t - b) * 100:+.1f} points",
                            "rows": "HellaSwag val 0-199" if task == "hellaswag" else "MMLU dev (285)",
                            "met": t >= b - 0.02})
    return [first, *rows_mc]


def dpo_small(out: Path) -> list[dict]:
    run_dir = train("dpo-small", out, data={"train": [str(DATA / "hh-train.jsonl")],
                                             "validation": str(DATA / "hh-judge.jsonl"), "on_error": "skip"},
                    train={"eval_steps": 0})  # the judging pairs are read once, at the end
    m = manifest(run_dir)
    r = m["result"]
    acc = r.get("eval_rewards_accuracies")
    return [{"preset": "dpo-small", "measure": "reward accuracy (implicit DPO reward, chosen > rejected)",
             "base": 0.0, "base_is": "policy = reference: every margin is 0, no pair ranked right",
             "tuned": round(acc, 4) if acc is not None else None,
             "margin": round(r.get("eval_rewards_margins", 0.0), 4),
             "rows": "train: HH-RLHF harmless-base sample pairs 0-499 (over 384 tokens dropped); judge: pairs "
                     "1000-1200", "train_seconds": r["train_seconds"], "steps": r["steps"],
             "met": acc is not None and acc >= 0.60}]


RUNS = {"classify-small": classify_small, "cpt-domain": cpt_domain, "sft-format": sft_format, "dpo-small": dpo_small}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(RUNS), help="comma list of presets")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: run bench/efficacy_data.py first")
    old = json.loads((RESULTS / "efficacy.json").read_text()) if (RESULTS / "efficacy.json").is_file() else {}
    rows = [r for r in old.get("rows", []) if r["preset"].split(" ")[0] not in args.only.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            t0 = time.time()
            got = RUNS[name](Path(tmp) / name)
            for r in got:
                r.update(wall_seconds=round(time.time() - t0, 1), target=TARGETS[r["preset"]],
                         date=time.strftime("%Y-%m-%d %H:%M"))
                print(r, flush=True)
            rows += got
    order = list(TARGETS)
    rows.sort(key=lambda r: order.index(r["preset"]))
    meta = {"machine": f"{os.cpu_count()} cores, {_cpu()}", "torch_threads": _threads()}
    (RESULTS / "efficacy.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    md = [f"# Preset efficacy on held-out rows ({meta['machine']})", "",
          "`.venv/bin/python bench/efficacy_data.py && .venv/bin/python bench/efficacy.py`", "",
          "| preset | measure | base | tuned | target | met | train s | rows |", "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['preset']} | {r['measure']} | {r['base']} | {r['tuned']} | {r['target']} | "
           f"{'yes' if r['met'] else 'NO'} | {r.get('train_seconds', '')} | {r['rows']} |" for r in rows]
    (RESULTS / "efficacy.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "cpu"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
