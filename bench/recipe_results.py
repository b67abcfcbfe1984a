"""Every recipe's numbers on a seeded tiny model, to check that a refactor changes no result.

Trains each recipe a few steps on a random 2-layer Llama (seeded, saved with the real SmolLM2
tokenizer), fp32, and records each run's logged losses/rewards and final result. Run it on two
trees and compare:

    .venv/bin/python bench/recipe_results.py --out /tmp/new.json
    PYTHONPATH=/path/to/old/checkout .venv/bin/python bench/recipe_results.py --out /tmp/old.json
    .venv/bin/python bench/recipe_results.py --compare /tmp/old.json /tmp/new.json

Numbers are compared exactly except timing fields (seconds, tokens/s), which depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
FAST = {"train.max_steps": 3, "train.logging_steps": 1, "train.precision": "fp32", "train.learning_rate": 1e-2,
        "train.warmup_ratio": 0.0, "train.eval_steps": 0, "seed": 3}
# label -> (config, overrides); "tiny" is the tiny model's folder, "reward_run" the reward run's.
RECIPES = {
    "sft": ("sft-lora.yaml", {"data.validation_fraction": 0.1}),
    "sft-packed": ("sft-lora.yaml", {"data.packing": True}),
    "sft-full": ("sft-full.yaml", {"train.learning_rate": 1e-3}),
    "cpt": ("cpt-lora.yaml", {}),
    "classify": ("classify-minilm.yaml", {"model.name": "all-minilm-l6-v2", "data.validation_fraction": 0.25}),
    "dpo": ("dpo-lora.yaml", {}),
    "kto": ("kto-lora.yaml", {}),
    "orpo": ("orpo-lora.yaml", {}),
    "simpo": ("simpo-lora.yaml", {}),
    "reward": ("reward-lora.yaml", {}),
    "grpo": ("grpo-lora.yaml", {"rl.max_new_tokens": 8, "train.batch_size": 4}),
    "ppo": ("ppo-lora.yaml", {"rl.max_new_tokens": 8, "train.batch_size": 4, "rl.reward_model": "reward_run"}),
    "dp": ("sft-dp-lora.yaml", {"data.validation_fraction": 0.1}),
}
TIMING = ("seconds", "per_s", "runtime", "step_time", "finished", "started")


def tiny_model(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunesmith.models.loading import load_tokenizer, materialize, resolve

    tok = load_tokenizer(resolve(str(materialize(resolve("smollm2-135m-instruct")))))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run_all(work: Path) -> dict:
    import tunesmith
    from tunesmith.runs import read_metrics

    tiny = tiny_model(work / "tiny")
    out, dirs = {}, {}
    for label, (config, overrides) in RECIPES.items():
        values = {k: {"tiny": str(tiny), "reward_run": str(dirs.get("reward"))}.get(v, v) if isinstance(v, str) else v
                  for k, v in overrides.items()}
        run_dir = tunesmith.train(CONFIGS / config, {**FAST, "model.name": str(tiny), "name": label,
                                                     "output_dir": str(work / "runs"), **values}, show_progress=False)
        dirs[label] = run_dir
        manifest = json.loads((run_dir / "manifest.json").read_text())
        out[label] = {"result": manifest["result"], "metrics": read_metrics(run_dir)}
        print(f"{label}: {json.dumps(_untimed(manifest['result']))[:160]}", flush=True)
    return out


def _untimed(tree):
    if isinstance(tree, dict):
        return {k: _untimed(v) for k, v in tree.items() if not any(t in k for t in TIMING)}
    if isinstance(tree, list):
        return [_untimed(v) for v in tree]
    return tree


def compare(old: dict, new: dict) -> list[str]:
    """Differences in every untimed number, and result keys the new side lost (new keys are shown,
    not counted as differences)."""
    diffs = []
    for label in sorted(k for k in set(old) | set(new) if k != "tunesmith"):
        a, b = _untimed(old.get(label)), _untimed(new.get(label))
        if a is None or b is None:
            diffs.append(f"{label}: only in {'new' if a is None else 'old'}")
            continue
        for part in ("result", "metrics"):
            if part == "result":
                shared = sorted(set(a[part]) & set(b[part]))
                lost = sorted(set(a[part]) - set(b[part]))
                if lost:
                    diffs.append(f"{label}.result lost keys: {lost}")
                added = sorted(set(b[part]) - set(a[part]))
                if added:  # new records (a refactor may add fields; it may not change or drop them)
                    print(f"{label}.result: new keys {added}")
                diffs += [f"{label}.result.{k}: {a[part][k]!r} != {b[part][k]!r}" for k in shared
                          if a[part][k] != b[part][k]]
            else:
                for i, (x, y) in enumerate(zip(a[part], b[part])):
                    common = sorted(set(x) & set(y))
                    diffs += [f"{label}.metrics[{i}].{k}: {x[k]!r} != {y[k]!r}" for k in common if x[k] != y[k]]
                if len(a[part]) != len(b[part]):
                    diffs.append(f"{label}.metrics: {len(a[part])} rows != {len(b[part])}")
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "recipe_results.json")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    args = ap.parse_args()
    if args.compare:
        old, new = (json.loads(p.read_text()) for p in args.compare)
        diffs = compare(old, new)
        labels = [k for k in new if k != "tunesmith"]
        print("\n".join(diffs) or f"same results: {len(labels)} recipe runs, every untimed number equal")
        return 1 if diffs else 0
    import tunesmith

    with tempfile.TemporaryDirectory() as tmp:
        results = {"tunesmith": str(Path(tunesmith.__file__).parent), **run_all(Path(tmp))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
