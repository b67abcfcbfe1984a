"""Benchmark (GPU): LoRA and full SFT of a Llama-3.2-1B-shaped model, tunesmith against trl's defaults.

Random weights (throughput does not depend on them), rows of 300-1000 tokens of random text in the
quickstart's instruction/output shape, bf16. Arms, each in a fresh process:
  tunesmith lora / full            the product path: train.kernels=auto (Liger where installed),
                                   model.attention=auto (FlashAttention-2 where installed), padded
  tunesmith lora / full packed     the same with data.packing (padding-free with FlashAttention-2)
  tunesmith full plain             kernels=none, attention=sdpa: what the switches buy
  trl lora / full defaults         SFTTrainer with its own defaults (gradient checkpointing on), bf16
MFU = tokens/s x FLOPs per token / the bf16 matmul peak measured on the card (8192^3 products):
full 6N + attention, LoRA 4N + attention (no weight gradients for the frozen base).

Two steps, because the device machine has no internet and is lent by the minute:
    .venv/bin/python bench/gpu_sft.py --prepare bench/gpu_kit     # here: tokenizer, data, wheels
    python3 bench/gpu_sft.py --kit bench/gpu_kit                   # there (carry bench/gpu_kit)
--tiny runs the same arms on a small random model on CPU (a smoke test of this script).
Writes bench/results/gpu_sft.json and .md (not with --tiny).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, max_position_embeddings=4096, rope_theta=500000.0, tie_word_embeddings=True,
                vocab_size=128256)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)
ARMS = {  # name -> (runner, method, settings)
    "tunesmith lora": ("tunesmith", "lora", {}),
    "trl lora defaults": ("trl", "lora", {}),
    "tunesmith full": ("tunesmith", "full", {}),
    "trl full defaults": ("trl", "full", {}),
    "tunesmith full packed": ("tunesmith", "full", {"data.packing": True}),
    "tunesmith lora packed": ("tunesmith", "lora", {"data.packing": True}),
    "tunesmith full plain": ("tunesmith", "full", {"train.kernels": "none", "model.attention": "sdpa",
                                                   "train.label_head": False}),
}

CHILD = r"""
import json, sys, time
runner, method, settings, kit, steps, batch, max_length, out = sys.argv[1:9]
settings, steps, batch, max_length = json.loads(settings), int(steps), int(batch), int(max_length)
import torch
model_dir, data = kit + "/model", kit + "/rows.jsonl"
if runner == "tunesmith":
    import tunesmith
    from tunesmith.runs import read_manifest
    cfg = {"name": "gpu", "output_dir": out, "overwrite": True, "model": {"name": model_dir},
           "data": {"train": [data], "max_length": max_length, "cache": False, "overlong": "truncate"},
           "train": {"method": method, "max_steps": steps, "batch_size": batch, "precision": "bf16",
                     "learning_rate": 1e-4 if method == "lora" else 1e-5, "logging_steps": 1,
                     "save_steps": 10**6, "warmup_ratio": 0.0}}
    run_dir = tunesmith.train(cfg, settings, show_progress=False)
    m = read_manifest(run_dir)
    r = m["result"]
    tokens, seconds, params = r["tokens_seen"], r["train_seconds"], m["parameters"]["total"]
    extra = {k: m["model"].get(k) for k in ("attention", "kernels")} if "model" in m else {}
else:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = [json.loads(l) for l in open(data)]
    ds = Dataset.from_list([{"prompt": r["instruction"], "completion": r["output"]} for r in rows])
    args = SFTConfig(output_dir=out + "/trl", max_steps=steps, per_device_train_batch_size=batch, bf16=True,
                     learning_rate=1e-4 if method == "lora" else 1e-5, logging_steps=1, save_strategy="no",
                     report_to="none", max_length=max_length, include_num_input_tokens_seen="non_padding",
                     use_cpu=not torch.cuda.is_available(), **settings)
    lora = (LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
            if method == "lora" else None)
    trainer = SFTTrainer(model=model_dir, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
    t0 = time.time(); trainer.train(); seconds = time.time() - t0
    tokens, params = trainer.state.num_input_tokens_seen, sum(p.numel() for p in trainer.model.parameters())
    extra = {}
peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
print("RESULT " + json.dumps({"tokens": int(tokens), "seconds": round(seconds, 2), "params": params,
      "peak_gpu_gb": round(peak, 2), **extra}))
"""


def prepare(kit: Path, rows: int = 2000, seed: int = 0) -> None:
    """Here, with the project's venv: the embedded tokenizer, the rows, the model's shape."""
    from tunesmith.models.loading import load_tokenizer, resolve

    kit.mkdir(parents=True, exist_ok=True)
    load_tokenizer(resolve("smollm2-135m-instruct")).save_pretrained(kit / "tokenizer")
    rng = random.Random(seed)
    words = [w for w in Path(ROOT / "examples" / "quickstart" / "train.jsonl").read_text().split() if w.isalpha()]
    with open(kit / "rows.jsonl", "w") as f:
        for _ in range(rows):
            prompt = " ".join(rng.choices(words, k=rng.randint(40, 200)))
            reply = " ".join(rng.choices(words, k=rng.randint(150, 500)))
            f.write(json.dumps({"instruction": prompt, "output": reply}) + "\n")
    print(f"wrote {kit}; carry it and wheels of trl, datasets, liger-kernel and flash-attn (README of device)")


def make_model(kit: Path, shape: dict) -> None:
    """A random model of `shape` with the kit's tokenizer, saved as bf16 safetensors."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(kit / "tokenizer")
    shape = {**shape, "vocab_size": max(shape.get("vocab_size", 0), len(tok))}
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id)).to(torch.bfloat16)
    model.save_pretrained(kit / "model")
    tok.save_pretrained(kit / "model")


def matmul_peak(n: int) -> float:
    """bf16 matmul TFLOP/s here: the best of a few n^3 products (the denominator of MFU)."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = (torch.randn(n, n, dtype=torch.bfloat16, device=dev) for _ in range(2))
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        if dev == "cuda":
            torch.cuda.synchronize()
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - t0) / 1e12)
    return best


def flops_per_token(params: int, method: str, shape: dict, tokens_per_row: float) -> float:
    """6N (full) or 4N (LoRA) plus causal attention: 12 x layers x hidden x (context / 2) for fwd+bwd."""
    attention = 12 * shape["num_hidden_layers"] * shape["hidden_size"] * tokens_per_row / 2
    return (6 if method == "full" else 4) * params + attention


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", type=Path, help="write the kit (tokenizer, rows) here and stop")
    ap.add_argument("--kit", type=Path, default=ROOT / "bench" / "gpu_kit")
    ap.add_argument("--tiny", action="store_true", help="a small random model on CPU: a smoke test of the script")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of arm names")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return 0
    import torch

    if not torch.cuda.is_available() and not args.tiny:
        raise SystemExit("no CUDA device: run this on a GPU machine, or --tiny for a CPU smoke test")
    shape = TINY if args.tiny else LLAMA_1B
    make_model(args.kit, shape)
    peak = matmul_peak(1024 if args.tiny else 8192)
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"{card}: bf16 matmul peak {peak:.1f} TFLOP/s", flush=True)
    n_rows = sum(1 for _ in open(args.kit / "rows.jsonl"))
    rows = []
    for name in args.arms.split(","):
        runner, method, settings = ARMS[name]
        out = subprocess.run([sys.executable, "-c", CHILD, runner, method, json.dumps(settings), str(args.kit),
                              str(args.steps), str(args.batch_size), str(args.max_length),
                              str(args.kit / "runs" / str(len(rows)))], capture_output=True, text=True, cwd=ROOT)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            rows.append({"arm": name, "error": out.stderr[-500:]})
            continue
        r = json.loads(line[0][7:])
        tps = r["tokens"] / r["seconds"]
        per_row = r["tokens"] / (args.steps * args.batch_size)
        mfu = tps * flops_per_token(r["params"], method, shape, min(per_row, args.max_length)) / 1e12 / peak
        rows.append({"arm": name, "tokens_per_s": round(tps), "mfu": round(mfu, 3), **r})
        print(rows[-1], flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": card, "bf16_matmul_peak_tflops": round(peak, 1),
            "torch": torch.__version__, "shape": shape, "steps": args.steps, "batch_size": args.batch_size,
            "max_length": args.max_length, "rows": n_rows}
    for r in rows:
        r["kernels"] = (r.get("kernels") or [""])[0]
    md = [f"{card}, {meta['date']}, torch {meta['torch']}; bf16 matmul peak {meta['bf16_matmul_peak_tflops']} "
          f"TFLOP/s; {args.steps} steps of batch {args.batch_size}, max_length {args.max_length}", "",
          "| arm | tokens/s | MFU | peak GPU GiB | attention | kernels |", "|---|---|---|---|---|---|"]
    md += [f"| {r['arm']} | {r.get('tokens_per_s', 'failed')} | {r.get('mfu', 0):.1%} | {r.get('peak_gpu_gb', '')} | "
           f"{r.get('attention', '')} | {r.get('kernels', '')} |" for r in rows]
    print("\n".join(md))
    if not args.tiny:  # a smoke run's numbers are not results
        results = ROOT / "bench" / "results"
        (results / "gpu_sft.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        (results / "gpu_sft.md").write_text("\n".join(md) + "\n")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
