"""Benchmark: generation-task throughput of the embedded SmolLM2 (items/s), through the same task code
`tunesmith eval` runs, old batching against new in one sitting.

Sets: the first --limit rows of GSM8K and DialogSum from the shared public samples (../shared/data,
beside the checkout), greedy, with their presets' prompts and max_new_tokens. Arms:
  before     batches of --batch-size prompts in file order (the code before: unsorted, suite batch)
  sorted     prompts sorted by length, batches of --batch-size
  sorted-xN  sorted, batches of N x --batch-size (N = tasks.GENERATION_BATCH_SCALE: what eval runs now)
Greedy replies must be the same in every arm; the script says so (and exits 1 if not).
Writes bench/results/eval_speed.json and .md. Usage:
    .venv/bin/python bench/eval_speed.py [--limit 40] [--batch-size 8] [--wide 4] [--max-new-tokens N]
        [--dtype float32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = [("gsm8k", SHARED / "gsm8k" / "train_rows_0000-0499.jsonl"),
        ("dialogsum", SHARED / "dialogsum" / "dialogsum.dev.jsonl")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=40, help="rows per set (the shared-samples suite runs 40)")
    ap.add_argument("--batch-size", type=int, default=8, help="the suite's batch_size")
    ap.add_argument("--wide", type=int, default=None, help="the sorted-xN arm's batch multiplier "
                    "(default: tasks.GENERATION_BATCH_SCALE; 0: no such arm)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="override the presets' (a smoke run)")
    ap.add_argument("--dtype", default="float32", help="weights: float32 or bfloat16")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: tunesmith's choice)")
    args = ap.parse_args()
    import torch

    from tunesmith.eval import tasks as T
    from tunesmith.hardware import hardware_info
    from tunesmith.inference import load

    wide = T.GENERATION_BATCH_SCALE if args.wide is None else args.wide
    loaded = load("smollm2-135m-instruct")
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded.model.to(getattr(torch, args.dtype))
    arms = {"before": (args.batch_size, True), "sorted": (args.batch_size, False)}
    if wide:
        arms[f"sorted-x{wide}"] = (args.batch_size * wide, False)
    T.GENERATION_BATCH_SCALE = 1  # each arm names its generation batch itself
    rows, same = [], True
    for s, (preset, path) in enumerate(SETS):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: this benchmark reads ../shared/data beside the checkout")
        spec = T.TaskSpec(**T.presets()[preset], name=preset, data=str(path), limit=args.limit)
        if args.max_new_tokens:
            spec.max_new_tokens = args.max_new_tokens
        data = T.read_rows(spec)
        replies = {}
        # Arms alternate, in A B C / C B A order from set to set: all see the same machine load.
        for arm in list(arms) if s % 2 == 0 else list(arms)[::-1]:
            batch, in_order = arms[arm]
            t0 = time.perf_counter()
            # One call per chunk of `batch` rows keeps file order inside batches, as before.
            chunks = [data[b:b + batch] for b in range(0, len(data), batch)] if in_order else [data]
            answers = [a for chunk in chunks for a in T.generate(loaded, spec, chunk, batch)[1]]
            seconds = time.perf_counter() - t0
            replies[arm] = answers
            rows.append({"set": preset, "arm": arm, "batch": batch, "items": len(data),
                         "max_new_tokens": spec.max_new_tokens, "seconds": round(seconds, 2),
                         "items_per_s": round(len(data) / seconds, 3),
                         "same_as_before": None})
            print(rows[-1], flush=True)
        for r in rows[-len(arms):]:
            r["same_as_before"] = replies[r["arm"]] == replies["before"]
            same &= r["same_as_before"]
    totals = {}
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        items, seconds = sum(r["items"] for r in mine), sum(r["seconds"] for r in mine)
        totals[arm] = {"items": items, "seconds": round(seconds, 2), "items_per_s": round(items / seconds, 3),
                       "speedup": round(totals.get("before", {"seconds": seconds})["seconds"] / seconds, 2)}
    hw = hardware_info()
    summary = {"totals": totals, "dtype": args.dtype, "limit": args.limit, "threads": torch.get_num_threads(),
               "torch": torch.__version__, "hardware": hw, "identical_replies": same, "sets": rows}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    cmd = (f"bench/eval_speed.py --limit {args.limit} --batch-size {args.batch_size} --wide {wide} "
           f"--dtype {args.dtype}" + (f" --max-new-tokens {args.max_new_tokens}" if args.max_new_tokens else ""))
    lines = ["# Generation-task throughput (SmolLM2-135M-Instruct, greedy)", "",
             f"`.venv/bin/python {cmd}`; torch {torch.__version__}, {summary['threads']} threads on "
             f"{os.cpu_count()} cores ({hw['cpu']}). Replies identical across arms: {same}.", "",
             "| set | arm | batch | items | seconds | items/s |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['set']} | {r['arm']} | {r['batch']} | {r['items']} | {r['seconds']} | {r['items_per_s']} |"
              for r in rows]
    lines += ["", "| arm | items/s | speed-up over before |", "|---|---:|---:|"]
    lines += [f"| {arm} | {t['items_per_s']} | {t['speedup']}x |" for arm, t in totals.items()]
    (out / "eval_speed.md").write_text("\n".join(lines) + "\n")
    if not same:
        raise SystemExit("greedy replies differ between arms: see bench/results/eval_speed.json")


if __name__ == "__main__":
    main()
