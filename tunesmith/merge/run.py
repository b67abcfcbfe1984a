"""`tunesmith merge MERGE.yaml`: parents -> merged weights -> eval gate -> a run directory.

The output is a run directory like any other, so generate, eval, export and serve read it:

  <output_dir>/<name>/
    config.yaml     a run config (the first parent's, renamed; its lora/method say what was merged)
    manifest.json   status, the merge (parents with their config hashes, method, weights, density,
                    library versions) and the gate's numbers
    adapter/        the merged LoRA adapter, plain peft                    [kind: adapters]
    model/          the merged checkpoint, plain transformers               [kind: models]
    gate/           each gated suite on the parents and the merge
    report.html/.md parents and merge side by side, and the gate's verdict

A merge that fails its gate is not kept: its weights move to rejected/, the manifest says rejected
with the numbers, and the command fails naming parent, suite, metric, values and tolerance, unless
force=True (then it is kept, and the manifest and report say it was forced).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail
from tunesmith.merge import gate as gating
from tunesmith.merge.config import SPARSE, MergeConfig, load_merge_config
from tunesmith.merge.parents import Parent, inspect

REJECTED = "rejected"  # the manifest status, and the folder a rejected merge's weights move to


def run_merge(config: MergeConfig | str | Path | dict, overrides: list[str] | dict | None = None, *,
              force: bool = False, show_progress: bool = True) -> Path:
    """Merge as the config says; returns the merged run directory. Raises TunesmithError for a bad
    config or parents (before anything loads) and for a merge that fails its gate (after recording
    it), unless `force`."""
    cfg = config if isinstance(config, MergeConfig) and not overrides else load_merge_config(
        _as_source(config), overrides)
    parents, base = inspect(cfg)
    suites = gating.suites(cfg)  # a broken suite stops the merge before any model loads
    run_dir = _prepare(cfg, [p.path for p in parents] + [Path(f) for f in suites] + ([Path(base)] if base else []))
    t0 = time.time()
    merge_info = {"kind": cfg.kind, "method": cfg.method, "weights": [p.weight for p in cfg.parents],
                  "density": cfg.density, "config": cfg.config_path, "config_values": dataclasses.asdict(cfg),
                  "parents": [p.describe() for p in parents], "base": base}
    manifest = _manifest(cfg, parents, merge_info)
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
    _say(show_progress, f"{cfg.kind} merge by {cfg.method} of {', '.join(p.label for p in parents)}")
    out = _merge(cfg, parents, base, run_dir, merge_info)
    merge_info["seconds"] = round(time.time() - t0, 1)
    (run_dir / runs.CONFIG_FILE).write_text(_run_config_yaml(cfg, parents, base, merge_info), encoding="utf-8")
    # "completed" before the gate: evaluation loads finished runs only. A crash during the gate sets
    # the status to failed (a rerun replaces the folder).
    merge_info["gate"] = "running" if suites else None
    runs.complete(run_dir, manifest, {"merge_seconds": merge_info["seconds"]}, None, out, merge=merge_info)
    try:
        result = gating.run_gate(cfg, parents, run_dir, suites, show_progress) if suites else None
    except BaseException as e:  # an ungated merge must not look finished: generate/serve/export refuse it
        manifest.update(status="failed", error=f"the eval gate did not finish ({type(e).__name__}: {e})")
        runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
        raise
    return _verdict(cfg, run_dir, manifest, merge_info, result, parents, out, force)


def _as_source(config) -> str | Path | dict:
    if isinstance(config, MergeConfig):
        raw = dataclasses.asdict(config)
        raw.pop("config_path", None)
        return raw
    return config


def _prepare(cfg: MergeConfig, inputs: list[Path]) -> Path:
    run_dir = Path(cfg.output_dir) / cfg.name
    # The run directory is emptied below: it must not hold what the merge reads (a parent run, the
    # base, a gate suite), which overwrite=true would otherwise delete before the merge loads it.
    inside = [p for p in inputs if p.exists() and p.resolve().is_relative_to(run_dir.resolve())]
    if inside:
        raise fail(f"the merge would be written to {run_dir}, which holds {inside[0]}, an input of this merge; "
                   "writing there would delete it", "pick another name (name=...) or output_dir", field="name")
    manifest = runs.read_manifest(run_dir) or {}
    if run_dir.exists() and any(run_dir.iterdir()) and not cfg.overwrite:
        if manifest.get("status") in ("completed", REJECTED):
            raise fail(f"{run_dir} holds a finished merge or run (status: {manifest['status']})",
                       "pick another name (name=...) or replace it (overwrite=true)", field="name")
        if "merge" not in manifest:  # a training run (perhaps still training) or some other folder
            raise fail(f"{run_dir} exists and is not an unfinished merge", "pick another name (name=...), or "
                       "replace it (overwrite=true)", field="name")
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished merge has nothing to resume: start over
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _manifest(cfg: MergeConfig, parents: list[Parent], merge_info: dict) -> dict:
    from tunesmith.hardware import hardware_info

    first = parents[0].manifest
    # The merge carries every parent's data: the card and the licence cascade list them all.
    data = [d for p in parents for d in p.manifest.get("data") or []]
    versions = runs.versions()
    versions["mergekit"] = _mergekit_version() if cfg.kind == "models" else None
    return {"tunesmith_run": 1, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": sys.argv, "seed": cfg.seed, "versions": versions, "git_sha": runs.git_sha(),
            "recipe": "merge", "data": list({d["path"]: d for d in data}.values()),
            "model": first.get("model") or {"spec": merge_info["base"] or str(parents[0].weights_dir)},
            "licences": _licences(parents), "hardware": hardware_info(), "merge": merge_info}


def _licences(parents: list[Parent]) -> dict | None:
    """Every parent's inputs in one cascade: a merge may be used as its most restricted input allows."""
    from tunesmith import licences

    found = [p.manifest.get("licences") for p in parents if p.manifest.get("licences")]
    if not found:
        return None
    inputs = [i for f in found for i in f.get("inputs", [])]
    base = next((i for i in inputs if i["role"] == "base model"), None)
    data = list({i["name"]: (i["name"], i["licence"], i["from"]) for i in inputs if i["role"] == "data"}.values())
    return licences.cascade((base["name"], base["licence"], base["from"]) if base else None, data)


def _merge(cfg: MergeConfig, parents: list[Parent], base: str | None, run_dir: Path, info: dict) -> Path:
    weights = [p.weight for p in cfg.parents]
    if cfg.kind == "adapters":
        from tunesmith.merge.adapters import merge_adapters

        out = run_dir / "adapter"
        info["adapter"] = merge_adapters(parents, cfg.method, weights, out, density=cfg.density,
                                         majority_sign=cfg.majority_sign, svd_rank=cfg.svd_rank, seed=cfg.seed)
        info["majority_sign"], info["svd_rank"] = cfg.majority_sign, cfg.svd_rank
        return out
    from tunesmith.merge.models import merge_models

    out = run_dir / "model"
    info.update(merge_models([p.weights_dir for p in parents], cfg.method, weights, out, base=base,
                             density=cfg.density, t=cfg.t, normalize=cfg.normalize, dtype=cfg.dtype, seed=cfg.seed))
    info["t"], info["normalize"], info["dtype"] = cfg.t, cfg.normalize, cfg.dtype
    return out


def _run_config_yaml(cfg: MergeConfig, parents: list[Parent], base: str | None, info: dict) -> str:
    """A run config that every run reader accepts: the first run parent's, renamed, with what the merge
    changed (LoRA rank for adapters; method full and the base for models)."""
    from tunesmith.config import dump_yaml, load_config, to_dict

    first = next((p.run_cfg for p in parents if p.run_cfg is not None), None)
    if first is not None:
        raw = to_dict(first)
        raw.pop("config_path", None)
    else:  # model folders only: the config a full fine-tune of the first parent would have
        raw = {"data": {"train": [cfg.config_path or str(parents[0].path)]}}
    raw.update(name=cfg.name, output_dir=cfg.output_dir, overwrite=False)
    raw.setdefault("eval", {})["suite"] = None  # the gate evaluated the merge; nothing to rerun on load
    raw.setdefault("audit", {})["suite"] = None
    if cfg.kind == "adapters":
        raw["lora"].update(r=info["adapter"]["r"], alpha=info["adapter"]["lora_alpha"], use_rslora=False)
    else:
        raw.setdefault("train", {})["method"] = "full"
        raw.setdefault("model", {})["name"] = base or raw.get("model", {}).get("name") or str(parents[0].weights_dir)
        raw["lora"] = {}
    resolved = load_config(raw)  # checked like any run config: generate, eval and export load it
    header = (f"# written by tunesmith merge from {cfg.config_path or 'a merge config'}: {cfg.kind} merged by "
              f"{cfg.method} of {', '.join(str(p.path) for p in parents)}.\n# The data section is the first "
              "parent's (export's parity prompts read it); manifest.json's merge section lists every parent.\n")
    return header + dump_yaml(resolved).split("\n", 1)[1]  # dump_yaml's own header names no file here


def _verdict(cfg: MergeConfig, run_dir: Path, manifest: dict, info: dict, result: dict | None,
             parents: list[Parent], out: Path, force: bool) -> Path:
    """Keep or reject the merge, write the report, and say so."""
    summary = [("Kind / method", f"{cfg.kind} / {cfg.method}"),
               ("Parents", "; ".join(f"{p.label} = {p.path} (weight {cfg.parents[p.index].weight:g})"
                                     for p in parents)),
               ("Settings", _settings(cfg)), ("Merged weights", str(out.relative_to(run_dir)) + "/"),
               ("Seconds", f"{info['seconds']:g} (merge)")]
    if result is None:
        info["gate"] = None
        verdict = "Not gated: no parent names an eval_suite. Kept."
    else:
        info["gate"] = {k: v for k, v in result.items() if k != "results"}
        info["gate"]["forced"] = bool(force and not result["passed"])
        n = len(result["checks"])
        if result["passed"]:
            verdict = f"Kept: the merge is within tolerance of every gated parent ({n} of {n} checks pass)."
        elif force:
            verdict = f"Kept with --force although {len(result['failures'])} of {n} checks FAILED."
        else:
            verdict = f"REJECTED: {len(result['failures'])} of {n} checks failed; weights moved to {REJECTED}/."
    rejected = result is not None and not result["passed"] and not force
    if rejected:
        (run_dir / REJECTED).mkdir(exist_ok=True)
        shutil.move(str(out), str(run_dir / REJECTED / out.name))
        manifest.update(status=REJECTED)
    labels = [p.label for p in parents] + [gating.MERGED]
    gating.write_report(run_dir, summary, result, labels, verdict)
    manifest["merge"] = info
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
    if rejected:
        raise fail("the merge failed its eval gate and was not kept: " + "; ".join(result["failures"])
                   + f" (report: {run_dir / 'report.html'})",
                   "raise that parent's tolerance, change weights, density or method, or keep it anyway with --force")
    return run_dir


def _settings(cfg: MergeConfig) -> str:
    parts = [f"weights {[p.weight for p in cfg.parents]}"]
    if cfg.method in SPARSE:
        parts.append(f"density {cfg.density:g}")
    if cfg.method == "slerp":
        parts.append(f"t {cfg.t:g}")
    if cfg.method.endswith("svd") and cfg.svd_rank:
        parts.append(f"svd rank {cfg.svd_rank}")
    if "dare" in cfg.method:
        parts.append(f"seed {cfg.seed}")
    return ", ".join(parts)


def _mergekit_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mergekit")
    except PackageNotFoundError:
        return None


def _say(show: bool, text: str) -> None:
    if show:
        print(f"tunesmith merge: {text}", file=sys.stderr, flush=True)
