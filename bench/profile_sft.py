"""Where a LoRA SFT step's time goes: torch's profiler over real training steps of the product path.

Trains the quickstart config (bf16 by default) through `tunesmith.train` and profiles steps 3-5
(after warm-up) with a TrainerCallback; writes the operators by self CPU time, and the same grouped
into matmuls, attention, elementwise, copies/casts, reductions and the rest, to
bench/results/sft_profile.json and .md.

    .venv/bin/python bench/profile_sft.py [--precision bf16] [--set train.label_head=false ...]
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
GROUPS = {  # operator -> group; anything else is "other"
    "aten::mm": "matmul", "aten::addmm": "matmul", "aten::bmm": "matmul", "aten::linear": "matmul",
    "aten::copy_": "copies and casts", "aten::to": "copies and casts", "aten::_to_copy": "copies and casts",
    "aten::mul": "elementwise", "aten::add": "elementwise", "aten::add_": "elementwise", "aten::neg": "elementwise",
    "aten::pow": "elementwise", "aten::silu": "elementwise", "aten::silu_backward": "elementwise",
    "aten::div": "elementwise", "aten::rsqrt": "elementwise", "aten::where": "elementwise",
    "aten::fill_": "fills (zeros)", "aten::zero_": "fills (zeros)",
    "aten::sum": "reductions", "aten::mean": "reductions",
    "aten::_log_softmax": "softmax and loss", "aten::_log_softmax_backward_data": "softmax and loss",
    "aten::nll_loss_forward": "softmax and loss", "aten::nll_loss_backward": "softmax and loss",
    "aten::cat": "copies and casts",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides")
    args = ap.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    import tunesmith

    class Profile(TrainerCallback):
        prof = None

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == 2:
                self.prof = profile(activities=[ProfilerActivity.CPU])
                self.prof.__enter__()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 5 and self.prof is not None:
                self.prof.__exit__(None, None, None)

    cb = Profile()
    overrides = {"train.precision": args.precision, "train.max_steps": 6, "train.eval_steps": 0,
                 "data.validation_fraction": 0.0, "train.save_steps": 10**6, "overwrite": True}
    overrides.update(dict(item.split("=", 1) for item in args.set))
    with tempfile.TemporaryDirectory() as tmp:
        tunesmith.train(ROOT / "examples/quickstart/config.yaml", {**overrides, "output_dir": tmp},
                        show_progress=False, callbacks=(cb,))
    events = cb.prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ops = sorted(({"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1), "calls": e.count,
                   "share": round(e.self_cpu_time_total / total, 4)} for e in events), key=lambda r: -r["self_ms"])
    groups: dict[str, float] = {}
    for r in ops:
        groups[GROUPS.get(r["op"], "other")] = groups.get(GROUPS.get(r["op"], "other"), 0.0) + r["share"]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "load_average": os.getloadavg(), "config": "examples/quickstart/config.yaml", "overrides": overrides,
            "steps_profiled": 3, "self_cpu_ms_per_step": round(total / 1e3 / 3, 1)}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "groups": groups, "ops": ops[:40]}
    (out / "sft_profile.json").write_text(json.dumps(report, indent=2) + "\n")
    md = [f"LoRA SFT step profile ({args.precision}), {meta['date']}, {meta['threads']} threads: "
          f"{meta['self_cpu_ms_per_step']} ms self CPU per step", "", "| group | share |", "|---|---|"]
    md += [f"| {g} | {v:.1%} |" for g, v in sorted(groups.items(), key=lambda kv: -kv[1])]
    md += ["", "| operator | self ms (3 steps) | calls | share |", "|---|---|---|---|"]
    md += [f"| {r['op']} | {r['self_ms']} | {r['calls']} | {r['share']:.1%} |" for r in ops[:15]]
    (out / "sft_profile.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
