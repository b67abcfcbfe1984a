"""Benchmark: each training objective on the real embedded models moves its held-out metric.

- SFT (LoRA) on Alpaca rows: held-out loss of the base vs the tuned model.
- Continued pre-training (LoRA) on tinyshakespeare: held-out perplexity, base vs tuned.
- DPO (LoRA) on HH-RLHF harmless-base: held-out reward accuracy and margin (the base is the
  reference, so its margin is 0 and its accuracy 0 by construction).
- Classification (all-MiniLM-L6-v2, full) on SST-2: held-out accuracy vs the majority class.

Needs ../shared/data beside the checkout (public samples; the product never reads it).
Writes bench/results/real_methods.json and .md. Usage:
    .venv/bin/python bench/real_methods.py [--only sft,cpt,dpo,classify] [--steps-scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def held_out_loss(model_dir_or_run, cfg) -> float:
    """Token-weighted mean next-token loss over the run's held-out rows (same split as training)."""
    import torch

    from tunesmith.data.prepare import prepare
    from tunesmith.inference import load
    from tunesmith.models.loading import load_tokenizer, resolve
    from tunesmith.recipes import KINDS

    tokenizer = load_tokenizer(resolve(cfg.model.name))
    rows = prepare(cfg.data, tokenizer, cfg.seed, KINDS[cfg.recipe]).validation
    model = load(str(model_dir_or_run)).model
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r.input_ids])
            labels = torch.tensor([r.labels])
            logits = model(input_ids=ids).logits[:, :-1].float()
            target = labels[:, 1:]
            mask = target != -100
            if mask.any():
                loss = torch.nn.functional.cross_entropy(logits[mask], target[mask], reduction="sum")
                total, count = total + loss.item(), count + int(mask.sum())
    return total / count


def run_lm(name: str, config: dict, out: Path) -> dict:
    import tunesmith
    from tunesmith.runs import read_manifest

    cfg = tunesmith.load_config({**config, "name": name, "output_dir": str(out), "overwrite": True})
    t0 = time.time()
    run_dir = tunesmith.train(cfg, show_progress=False)
    seconds = time.time() - t0
    base = held_out_loss(cfg.model.name, cfg)
    tuned = held_out_loss(run_dir, cfg)
    r = read_manifest(run_dir)["result"]
    return {"method": name, "steps": r["steps"], "train_seconds": r["train_seconds"], "wall_seconds": round(seconds, 1),
            "base_loss": round(base, 4), "tuned_loss": round(tuned, 4),
            "base_perplexity": round(math.exp(base), 2), "tuned_perplexity": round(math.exp(tuned), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="sft,cpt,dpo,classify")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's step count")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs the shared data folder at {SHARED}")
    steps = lambda n: max(1, round(n * args.steps_scale))  # noqa: E731
    lora = {"r": 16, "alpha": 32, "dropout": 0.05}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        only = args.only.split(",")
        if "sft" in only:
            results.append(run_lm("sft-alpaca", {
                "recipe": "sft", "data": {"train": [str(SHARED / "alpaca/alpaca_data_rows_0000-0099.jsonl")],
                                          "validation_fraction": 0.2, "max_length": 512},
                "train": {"max_steps": steps(40), "batch_size": 8, "learning_rate": 3e-4, "eval_steps": 0,
                          "save_steps": 10**6, "logging_steps": 10}, "lora": lora}, out))
            print(results[-1], flush=True)
        if "cpt" in only:
            results.append(run_lm("cpt-tinyshakespeare", {
                "recipe": "cpt", "data": {"train": [str(SHARED / "raw_text/tinyshakespeare_part1.txt")],
                                          "validation_fraction": 0.02, "max_length": 256},
                "train": {"max_steps": steps(40), "batch_size": 4, "learning_rate": 3e-4, "eval_steps": 0,
                          "save_steps": 10**6, "logging_steps": 10}, "lora": lora}, out))
            print(results[-1], flush=True)
        if "dpo" in only:
            import tunesmith
            from tunesmith.runs import read_manifest

            t0 = time.time()
            run_dir = tunesmith.train({
                "recipe": "dpo", "name": "dpo-hh", "output_dir": str(out), "overwrite": True,
                "data": {"train": [str(SHARED / "hh_rlhf/harmless-base_test_shared.jsonl")], "on_error": "skip",
                         "validation_fraction": 0.1, "max_length": 384},
                "train": {"max_steps": steps(60), "batch_size": 4, "learning_rate": 1e-4, "eval_steps": 0,
                          "save_steps": 10**6, "logging_steps": 10},
                "preference": {"beta": 0.1}, "lora": lora}, show_progress=False)
            r = read_manifest(run_dir)["result"]
            results.append({"method": "dpo-hh-rlhf", "steps": r["steps"], "train_seconds": r["train_seconds"],
                            "wall_seconds": round(time.time() - t0, 1),
                            "base_pairs_loss": round(math.log(2), 4), "base_margin": 0.0,  # policy == reference
                            "heldout_reward_accuracy": round(r["eval_rewards_accuracies"], 4),
                            "heldout_margin": round(r["eval_rewards_margins"], 4),
                            "heldout_pairs_loss": round(r["eval_loss"], 4)})
            print(results[-1], flush=True)
        if "classify" in only:
            import collections

            import tunesmith
            from tunesmith.runs import read_manifest

            path = SHARED / "sst2/sst2_train_sample2000.jsonl"
            t0 = time.time()
            cfg = tunesmith.load_config({
                "recipe": "classify", "name": "classify-sst2", "output_dir": str(out), "overwrite": True,
                "model": {"name": "all-minilm-l6-v2"},
                "data": {"train": [str(path)], "columns": {"text": "sentence"}, "validation_fraction": 0.2,
                         "max_length": 64},
                "train": {"method": "full", "max_steps": steps(120), "batch_size": 32, "learning_rate": 1e-4,
                          "eval_steps": 0, "save_steps": 10**6, "logging_steps": 20}})
            run_dir = tunesmith.train(cfg, show_progress=False)
            r = read_manifest(run_dir)["result"]
            from tunesmith.data.prepare import load_all

            held = load_all(cfg.data, cfg.seed).validation
            majority = collections.Counter(e.extra["label"] for e in held).most_common(1)[0][1] / len(held)
            results.append({"method": "classify-sst2", "steps": r["steps"], "train_seconds": r["train_seconds"],
                            "wall_seconds": round(time.time() - t0, 1), "heldout_rows": len(held),
                            "majority_class_accuracy": round(majority, 4), "heldout_accuracy": round(r["accuracy"], 4),
                            "heldout_f1_macro": round(r["f1_macro"], 4)})
            print(results[-1], flush=True)
    payload = {"machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count()},
               "date": time.strftime("%Y-%m-%d"), "results": results}
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    name = "real_methods" if args.only == "sft,cpt,dpo,classify" else "real_methods_" + args.only.replace(",", "_")
    (res / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["| method | steps | train s | before | after |", "|---|---|---|---|---|"]
    for r in results:
        if "base_loss" in r:
            before, after = f"loss {r['base_loss']} (ppl {r['base_perplexity']})", \
                f"loss {r['tuned_loss']} (ppl {r['tuned_perplexity']})"
        elif "heldout_margin" in r:
            before = "pair loss ln 2 = 0.6931, margin 0 (policy = reference)"
            after = (f"pair loss {r['heldout_pairs_loss']}, margin {r['heldout_margin']}, "
                     f"reward accuracy {r['heldout_reward_accuracy']}")
        else:
            before = f"majority class {r['majority_class_accuracy']}"
            after = f"accuracy {r['heldout_accuracy']}, F1 {r['heldout_f1_macro']}"
        lines.append(f"| {r['method']} | {r['steps']} | {r['train_seconds']} | {before} | {after} |")
    (res / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
