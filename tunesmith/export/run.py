"""`tunesmith export RUN --format hf|gguf|ollama`: merge, convert, check parity, write the card.

<out>/ (default <run>/export)
  hf/                    merged transformers checkpoint (every format builds on it)
  adapter/               the adapter alone (adapter runs)
  gguf/NAME-TYPE.gguf    llama.cpp files, one per requested type          [gguf, ollama]
  gguf/Modelfile         Ollama Modelfile next to the GGUF                [ollama]
  gptq/ or awq/           4-bit (or 8-bit) checkpoint for vLLM, quantized on a CUDA GPU  [gptq, awq]
  parity.json, parity.md the parity check of every artefact against base + adapter
  README.md              the model card
  training_config.yaml   the run's resolved config
  export_manifest.json   what was produced: sizes, sha256, versions, parity summary

An artefact below its parity threshold stops the export with an error saying by how much,
unless force=True; then the card and the manifest say it was forced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail
from tunesmith.export import merge, parity

FORMATS = ("hf", "gguf", "ollama", "gptq", "awq")
GPU_FORMATS = ("gptq", "awq")  # quantized on a CUDA device (export/gpu_quant.py)
_CONVERTED = ("f32", "f16", "bf16", "q8_0")  # written by llama.cpp's converter; the rest are quantized from f16


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None, *, quant=("q8_0",),
           force: bool = False, parity_prompts: int = 8, max_new_tokens: int = parity.MAX_NEW_TOKENS,
           bits: int = 4, group_size: int = 128, calibration_rows: int = 128) -> Path:
    """Export a finished run as `fmt` (hf, gguf, ollama, gptq or awq); returns the export directory.

    out: the export folder (default RUN/export); quant: GGUF types to write (f16, bf16, f32, q8_0, q4_k_m, ...,
    a list or a comma string; ollama uses the first);
    parity_prompts: rows of the run's data added to the generic parity prompts (more rows are added
    while the replies give fewer than parity.MIN_POSITIONS positions); max_new_tokens: the most
    tokens of each greedy reply compared; bits, group_size, calibration_rows: gptq and awq only."""
    if fmt not in FORMATS:
        raise fail(f"unknown export format '{fmt}'", f"use one of: {', '.join(FORMATS)}", field="--format")
    gguf_types = tuple(quant) if not isinstance(quant, str) else tuple(quant.split(","))
    if fmt in GPU_FORMATS:  # refused here, before anything is merged or written, when there is no CUDA
        from tunesmith.export import gpu_quant

        gpu_quant.check_can_run(fmt, bits, group_size)
    elif fmt != "hf" and not gguf_types:
        raise fail(f"--format {fmt} needs at least one GGUF type", "e.g. --quant q8_0 or --quant q8_0,q4_k_m")
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "export"
    t0 = time.time()
    info = merge.export_hf(run_dir, out)  # checks the run first: unfinished / classifier runs stop here
    hf = Path(info["hf_dir"])
    shutil.copyfile(run_dir / runs.CONFIG_FILE, out / "training_config.yaml")

    # Artefacts: (name, kind for the thresholds, candidate factory); candidates are built one at a
    # time so that only one exported model sits in memory beside the reference.
    artefacts = [("hf", "exact", lambda: parity.HFCandidate(hf, name="hf"))]
    ggufs, modelfile = [], None
    if fmt in ("gguf", "ollama"):
        ggufs = _write_ggufs(hf, out / "gguf", run_dir.name, gguf_types)
        from tunesmith.export import gguf

        for qtype, path in ggufs:
            artefacts.append((f"gguf:{path.name}", qtype, lambda p=path: gguf.GGUFCandidate(p)))
    quantized = None
    if fmt in GPU_FORMATS:
        from transformers import AutoTokenizer

        texts = gpu_quant.calibration_texts(run_dir, AutoTokenizer.from_pretrained(hf), calibration_rows)
        quantized = gpu_quant.quantize(fmt, hf, out / fmt, texts, bits=bits, group_size=group_size)
        artefacts.append((fmt, f"q{bits}", lambda: gpu_quant.QuantCandidate(out / fmt, fmt)))
    if fmt == "ollama":
        from tunesmith.export import ollama

        modelfile = ollama.write_modelfile(ggufs[0][1], hf, ggufs[0][1].parent)  # the first type requested

    results = _check_parity(run_dir, artefacts, parity_prompts, max_new_tokens)
    failed = [r for r in results if not r["passed"]]
    for r in failed:
        r["forced"] = force
    (out / "parity.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "parity.md").write_text(parity.report_md(results))
    if failed and not force:
        raise fail("export parity check failed: " + "; ".join(f"{r['candidate']}: {r['shortfall']}" for r in failed)
                   + f" (details: {out / 'parity.md'})",
                   "the exported files answer differently from the trained model; look at the per-prompt details, "
                   "try a higher-precision type (--quant q8_0 or f16), or pass --force to keep the export anyway "
                   "(its card will say it failed)")
    if failed:
        print("tunesmith: warning: parity check failed and the export was forced: "
              + "; ".join(f"{r['candidate']}: {r['shortfall']}" for r in failed), file=sys.stderr, flush=True)

    files = _file_rows(out, [hf / f for f in sorted(p.name for p in hf.iterdir())]
                       + [p for _, p in ggufs] + ([Path(modelfile)] if modelfile else [])
                       + (sorted((out / fmt).iterdir()) if quantized else []))
    export_info = {"hf_dir": str(hf), "adapter_dir": info["adapter_dir"], "gguf": [str(p) for _, p in ggufs],
                   "modelfile": str(modelfile) if modelfile else None,
                   "parity": [parity.summary(r) for r in results], "forced": bool(failed and force),
                   "warnings": info["warnings"], "files": files}
    from tunesmith.export import card

    card.write_card(run_dir, out, export_info)
    runs.write_json(out / "export_manifest.json", {
        "tunesmith_export": 1, "format": fmt, "run": str(run_dir.resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.time() - t0, 1),
        "base_model": info["base_model"], "kind": info["kind"], "method": info["method"],
        "base_quantization": info["quantization"], "eos_token_ids": info["eos_token_ids"],
        "gguf_types": [q for q, _ in ggufs], "quantized": quantized, "forced": export_info["forced"],
        "warnings": info["warnings"],
        "parity": export_info["parity"], "files": files + _file_rows(out, _adapter_files(info)),
        "versions": _versions(fmt)})
    return out


def _write_ggufs(hf: Path, folder: Path, stem: str, types: tuple[str, ...]) -> list[tuple[str, Path]]:
    """One GGUF per type: the types llama.cpp's converter writes itself (f32, f16, bf16, q8_0) straight
    from the merged fp32 weights; the others (q4_k_m, ...) quantized from an f16 conversion, which is
    deleted afterwards unless f16 itself was asked for."""
    from tunesmith.export import gguf

    folder.mkdir(parents=True, exist_ok=True)
    wanted = list(dict.fromkeys(t.strip().lower() for t in types if t.strip()))
    out = {q: _rename(gguf.convert(hf, folder, q), folder / f"{stem}-{q}.gguf") for q in wanted if q in _CONVERTED}
    quantized = [q for q in wanted if q not in _CONVERTED]
    if quantized:
        source = out.get("f16") or gguf.convert(hf, folder, "f16")
        for q in quantized:
            out[q] = gguf.quantize(source, folder / f"{stem}-{q}.gguf", q)
        if "f16" not in out:
            Path(source).unlink(missing_ok=True)
    return [(q, out[q]) for q in wanted]  # in the order asked: ollama's Modelfile uses the first


def _rename(path: Path, target: Path) -> Path:
    path = Path(path)
    if path != target:
        path.replace(target)
    return target


def _check_parity(run_dir: Path, artefacts: list, n_prompts: int, max_new_tokens: int) -> list[dict]:
    import gc

    from tunesmith.inference import load

    loaded = load(str(run_dir))  # the trained model as tunesmith runs it: base (fp32) + adapter
    pool = parity.build_prompts(run_dir, loaded.tokenizer, max(n_prompts, parity.MAX_RUN_PROMPTS))
    generic = sum(p.name.startswith("generic-") for p in pool)
    ref = parity.reference_outputs(loaded, pool, max_new_tokens, min_prompts=generic + n_prompts,
                                   min_positions=parity.MIN_POSITIONS)
    del loaded
    gc.collect()
    results = []
    for _name, kind, make in artefacts:
        cand = make()
        try:
            results.append(parity.compare(ref, cand, kind=kind))
        finally:
            getattr(cand, "close", lambda: None)()  # llama.cpp frees its model here, not at garbage collection
        del cand
        gc.collect()
    return results


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_rows(out: Path, paths: list[Path]) -> list[dict]:
    return [{"path": Path(p).relative_to(out).as_posix(), "bytes": Path(p).stat().st_size, "sha256": _sha256(Path(p))}
            for p in paths if Path(p).is_file()]


def _adapter_files(info: dict) -> list[Path]:
    return sorted(Path(info["adapter_dir"]).iterdir()) if info["adapter_dir"] else []


def _versions(fmt: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = runs.versions()
    pkgs = {"hf": (), "gptq": ("gptqmodel",), "awq": ("llmcompressor", "compressed_tensors")}
    for pkg in pkgs.get(fmt, ("gguf", "llama_cpp_python")):
        try:
            out[pkg] = version(pkg.replace("_", "-"))
        except PackageNotFoundError:
            out[pkg] = None
    return out
