"""The `tunesmith data` commands that write files: clean, augment, synth and split.

Each hands its rows to the module that does the work (curate, augment, synth, split) and writes
the result, a JSON report and a manifest.json (input and output sha256s, settings, seed, library
versions) into one folder, so that every derived data file says where it came from. tunesmith.api
resolves the config and the output folder, and builds the `generate` function that augment and
synth use; nothing here loads a model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tunesmith.data.augment import Generate, augment_examples
from tunesmith.data.curate import curate, to_row
from tunesmith.data.formats import Example
from tunesmith.data.prepare import check_files, data_files, load_training_examples
from tunesmith.data.readers import iter_rows
from tunesmith.data.split import leakage, split_rows
from tunesmith.data.synth import finalize_synthetic, self_instruct, to_examples
from tunesmith.errors import Problem, TunesmithError
from tunesmith.models.loading import file_sha256
from tunesmith.runs import versions, write_json


def write_rows(out: Path, name: str, examples: list[Example]) -> dict:
    """Records as JSONL rows in out/name; returns {path, rows, sha256} for a manifest."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / name, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(to_row(ex), ensure_ascii=False) + "\n")
    return {"path": str(out / name), "rows": len(examples), "sha256": file_sha256(out / name)}


def _inputs(paths: list[str]) -> list[dict]:
    return [{"path": p, "sha256": file_sha256(p)} for p in paths]


def write_clean(data, seed: int, out: Path) -> Path:
    """The data.clean steps run on a data section's training rows (`data`: the config's DataConfig);
    writes clean.jsonl, clean_report.json and a manifest with the records' hashes before and after."""
    # Loaded with cleaning off: the point is to report what each step does to the raw rows.
    raw = dataclasses.replace(data, clean=dataclasses.replace(data.clean, enabled=False))
    check_files(raw)
    examples, info = load_training_examples(raw, seed)
    info.pop("group_of", None)
    kept, report = curate(examples, data.clean)
    written = write_rows(out, "clean.jsonl", kept)
    write_json(out / "clean_report.json", {"load": info, "clean": report})
    write_json(out / "manifest.json", {
        "step": "clean", "inputs": _inputs(data_files(data)),
        "output": {"path": written["path"], "sha256": written["sha256"], "rows": written["rows"]},
        "rows_before": report["before"]["rows"], "rows_after": report["after"]["rows"],
        "records_sha256_before": report["before"]["sha256"], "records_sha256_after": report["after"]["sha256"],
        "settings": dataclasses.asdict(data.clean), "seed": seed, "versions": versions()})
    return out


def write_augmented(real: list[Example], data, seed: int, out: Path, *, methods: list[str], fraction: float,
                    max_fraction: float, generate: Generate | None, model: str | None) -> Path:
    """Augmented copies of a `fraction` of the `real` rows (read from the data section `data`),
    deduplicated against them (exactly: a copy is meant to be close to its source), filtered and
    capped at `max_fraction` of the final set; writes augmented.jsonl (real rows and kept copies),
    augment_report.json and a manifest. `generate` serves paraphrase and back_translate; `model`
    is its name, for the manifest."""
    copies, aug_report = augment_examples(real, methods=methods, fraction=fraction, seed=seed, generate=generate)
    final, fin_report = finalize_synthetic(real, copies, max_fraction=max_fraction, seed=seed, dedup="exact")
    written = write_rows(out, "augmented.jsonl", final)
    write_json(out / "augment_report.json", {"augment": aug_report, "finalize": fin_report})
    write_json(out / "manifest.json", {"step": "augment", "methods": methods, "fraction": fraction,
                                       "max_fraction": max_fraction, "model": model, "seed": seed,
                                       "inputs": _inputs(data_files(data)), "output": written,
                                       "versions": versions()})
    return out


def read_seed_tasks(path: str | Path) -> list[dict]:
    """Self-instruct seed tasks from a data file; every unreadable row is reported at once."""
    tasks, bad = [], []
    for _line, row in iter_rows(path):
        (bad if isinstance(row, Problem) else tasks).append(row)
    if bad:
        raise TunesmithError(bad[:50], title=f"{len(bad)} unreadable rows in {path}:")
    return tasks


def write_synthetic(tasks: list[dict], generate: Generate, out: Path, *, n: int, seed: int, max_new_tokens: int,
                    real_rows: list[Example], max_fraction: float, model: str, inputs: list[str]) -> Path:
    """Up to `n` self-instruct rows from seed `tasks`, labelled synthetic, deduplicated against
    `real_rows` (and each other), filtered and capped at `max_fraction`; writes synthetic.jsonl
    (the kept synthetic rows only), synth_report.json and a manifest naming `model` and hashing
    the `inputs` files."""
    gen_report: dict = {}
    rows = self_instruct(tasks, generate, n=n, seed=seed, max_new_tokens=max_new_tokens, report=gen_report)
    final, fin_report = finalize_synthetic(real_rows, to_examples(rows), max_fraction=max_fraction, seed=seed)
    written = write_rows(out, "synthetic.jsonl", [e for e in final if e.extra.get("synthetic")])
    write_json(out / "synth_report.json", {"generate": gen_report, "finalize": fin_report})
    write_json(out / "manifest.json", {"step": "synth", "model": model, "n": n, "seed": seed,
                                       "inputs": _inputs(inputs), "output": written, "versions": versions()})
    return out


def write_split(path: str | Path, ratios: dict[str, float], out: Path, *, method: str, key: str | None,
                seed: int) -> Path:
    """A data file's raw rows split into out/NAME.jsonl for each name in `ratios` (rows kept as
    they are, not converted), with split_report.json (a leakage check for grouped splits) and a
    manifest."""
    rows = []
    problems = []
    for _line, row in iter_rows(path):
        (problems if not isinstance(row, dict) else rows).append(row)
    if problems:
        raise TunesmithError(problems[:50], title=f"{len(problems)} unreadable rows in {path}:")
    parts = split_rows(rows, ratios, method=method, seed=seed, key=key)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, idx in parts.items():
        target = out / f"{name}.jsonl"
        with open(target, "w", encoding="utf-8") as f:
            for i in idx:
                f.write(json.dumps(rows[i], ensure_ascii=False) + "\n")
        files[name] = {"path": str(target), "rows": len(idx), "sha256": file_sha256(target)}
    leaks = leakage(rows, parts, key) if key and method == "grouped" else {}
    write_json(out / "split_report.json", {"method": method, "key": key, "ratios": ratios, "seed": seed,
                                           "splits": files, "leakage": {f"{a}/{b}": v[:50] for (a, b), v in
                                                                        leaks.items()}})
    write_json(out / "manifest.json", {"step": "split", "inputs": [{"path": str(path), "sha256": file_sha256(path),
                                                                     "rows": len(rows)}],
                                       "outputs": files, "seed": seed, "versions": versions()})
    return out
