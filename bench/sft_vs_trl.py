"""Benchmark: tunesmith's LoRA SFT against trl's SFTTrainer on the same rows, in one sitting.

Every arm trains the embedded SmolLM2 with LoRA r=16 on all linear layers, batch 8, max_length 256,
on the quickstart rows as tunesmith tokenizes them (trl gets the same token ids, pre-tokenized), in
a fresh process of its own (so peak RSS is its own). Arms alternate tunesmith / trl so that a noisy
machine hurts both alike. MFU = tokens/s x 4 x parameters (a LoRA step: forward 2N, backward through
the activations 2N; no weight gradients for the frozen base) / the bf16 matmul peak measured here.

    .venv/bin/python bench/sft_vs_trl.py [--steps 20] [--arms a,b,...]

Writes bench/results/sft_vs_trl.json and .md.
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
CONFIG = ROOT / "examples" / "quickstart" / "config.yaml"
ARMS = {  # name -> (runner, settings)
    "tunesmith bf16": ("tunesmith", {"train.precision": "bf16"}),
    "trl bf16 no-checkpointing": ("trl", {"bf16": True, "gradient_checkpointing": False}),
    "tunesmith bf16 label_head-off": ("tunesmith", {"train.precision": "bf16", "train.label_head": False}),
    "trl defaults (fp32 checkpointing)": ("trl", {}),
    "tunesmith fp32": ("tunesmith", {"train.precision": "fp32"}),
    "trl bf16": ("trl", {"bf16": True}),
    "tunesmith bf16 packing": ("tunesmith", {"train.precision": "bf16", "data.packing": True}),
}

CHILD = r"""
import json, resource, sys, time
runner, settings, steps, batch = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out, config = sys.argv[5], sys.argv[6]
import tunesmith
common = {"output_dir": out, "overwrite": True, "train.max_steps": steps, "train.batch_size": batch,
          "train.eval_steps": 0, "train.save_steps": 10**6, "data.validation_fraction": 0.0, "train.logging_steps": 1}
if runner == "tunesmith":
    from tunesmith.runs import read_manifest
    run_dir = tunesmith.train(config, {**common, **settings}, show_progress=False)
    r = read_manifest(run_dir)["result"]
    params = read_manifest(run_dir)["parameters"]["total"]
    tokens, seconds = r["tokens_seen"], r["train_seconds"]
else:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    from tunesmith.data.prepare import prepare
    from tunesmith.models.loading import load_tokenizer, materialize, resolve
    cfg = tunesmith.load_config(config, common)
    source = resolve(cfg.model.name)
    tok = load_tokenizer(source)
    rows = prepare(cfg.data, tok, cfg.seed, ("chat",)).train  # the very token ids tunesmith trains on
    ds = Dataset.from_list([{"input_ids": r.input_ids} for r in rows])
    args = SFTConfig(output_dir=out + "/trl", max_steps=steps, per_device_train_batch_size=batch,
                     learning_rate=cfg.train.learning_rate, logging_steps=1, save_strategy="no", report_to="none",
                     use_cpu=not torch.cuda.is_available(), max_length=cfg.data.max_length, seed=cfg.seed,
                     include_num_input_tokens_seen="non_padding", dataloader_num_workers=0, **settings)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=str(materialize(source)), args=args, train_dataset=ds, processing_class=tok,
                         peft_config=lora)
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    tokens = trainer.state.num_input_tokens_seen
    params = sum(p.numel() for p in trainer.model.parameters())
print("RESULT " + json.dumps({"tokens": tokens, "seconds": round(seconds, 1), "params": params,
      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))
"""


def matmul_peak() -> float:
    """bf16 matmul GFLOP/s on this machine with torch's threads (the best of a few 2048^3 products)."""
    import torch

    a, b = torch.randn(2048, 2048, dtype=torch.bfloat16), torch.randn(2048, 2048, dtype=torch.bfloat16)
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9)
    return best


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of arm names (no commas in names)")
    args = ap.parse_args()
    peak = matmul_peak()
    print(f"bf16 matmul peak: {peak:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.arms.split(","):
            runner, settings = ARMS[name]
            out = subprocess.run([sys.executable, "-c", CHILD, runner, json.dumps(settings), str(args.steps),
                                  str(args.batch_size), os.path.join(tmp, str(len(rows))), str(CONFIG)],
                                 capture_output=True, text=True, cwd=ROOT)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                return 1
            r = json.loads(line[0][7:])
            tps = r["tokens"] / r["seconds"]
            mfu = tps * 4 * r["params"] / 1e9 / peak
            rows.append({"arm": name, "tokens_per_s": round(tps, 1), "mfu": round(mfu, 3), **r})
            print(rows[-1], flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(), "cores": os.cpu_count(),
            "load_average": os.getloadavg(), "bf16_matmul_peak_gflops": round(peak), "steps": args.steps,
            "batch_size": args.batch_size, "model": "smollm2-135m-instruct, LoRA r=16 all-linear",
            "data": "examples/quickstart/train.jsonl as tunesmith tokenizes it (~92 tokens/row)"}
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "sft_vs_trl.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    md = [f"{meta['cpu']}, {meta['cores']} cores, {meta['date']}; bf16 matmul peak {meta['bf16_matmul_peak_gflops']} "
          f"GFLOP/s; {args.steps} steps of batch {args.batch_size}", "",
          "| arm | non-padding tokens/s | MFU (bf16 peak) | peak RSS GB |", "|---|---|---|---|"]
    md += [f"| {r['arm']} | {r['tokens_per_s']} | {r['mfu']:.1%} | {r['peak_rss_gb']} |" for r in rows]
    (results / "sft_vs_trl.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
