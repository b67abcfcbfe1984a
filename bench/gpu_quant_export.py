"""Benchmark (CUDA GPU): GPTQ and AWQ export of a finished run, with the export's own parity check.

    python bench/gpu_quant_export.py runs/quickstart --formats gptq      # env with tunesmith[gptq]
    python bench/gpu_quant_export.py runs/quickstart --formats awq       # env with tunesmith[awq]

Each format is exported into RUN/export-<format>; the time, the size of the quantized folder against
the merged fp32 checkpoint, and the parity numbers (top-1 agreement with its 95% lower bound, mean KL)
go to bench/results/gpu_quant_export.json and .md (merged with earlier formats' rows). Refuses on a
machine without CUDA, as the export itself does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "gpu_quant_export"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--formats", default="gptq,awq")
    ap.add_argument("--bits", type=int, default=4)
    args = ap.parse_args()
    import torch

    import tunesmith

    results = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").is_file() else {}
    for fmt in args.formats.split(","):
        t0 = time.time()
        out = tunesmith.export(args.run, fmt, out=Path(args.run) / f"export-{fmt}", bits=args.bits, force=True)
        manifest = json.loads((out / "export_manifest.json").read_text())
        parity = [p for p in manifest["parity"] if p["candidate"] != "hf"]
        results[fmt] = {"seconds": round(time.time() - t0, 1), "quantize_seconds": manifest["quantized"]["seconds"],
                        "bytes": _size(out / fmt), "hf_bytes": _size(out / "hf"), "parity": parity,
                        "device": torch.cuda.get_device_name(0), "library": manifest["quantized"]["library"],
                        "library_version": manifest["quantized"]["library_version"], "bits": args.bits}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| format | device | quantize s | size / fp32 | top-1 (95% low) | mean KL | parity |", "|---" * 7 + "|"]
    for fmt, r in results.items():
        p = r["parity"][0] if r["parity"] else {}
        lines.append(f"| {fmt} {r['bits']}-bit ({r['library']} {r['library_version']}) | {r['device']} | "
                     f"{r['quantize_seconds']} | {r['bytes'] / r['hf_bytes']:.2f} | "
                     f"{p.get('top1_agreement', float('nan')):.3f} ({p.get('top1_ci95_low', float('nan')):.3f}) | "
                     f"{p.get('kl_mean', float('nan')):.4f} | {'pass' if p.get('passed') else 'FAIL'} |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
