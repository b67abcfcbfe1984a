"""The parents of a merge, checked on disk before any model loads: every problem at once, each at
its config key (parents[i].path) and YAML line.

An adapter parent is a finished LoRA run; a model parent is a finished full fine-tune run or a
transformers model folder (a tunesmith export's hf/ folder brings its run's config and manifest).
What is read here (the run's resolved config, manifest and adapter config) also goes into the
merged run's manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import Collector
from tunesmith.merge.config import EQUAL_RANK, MergeConfig, yaml_lines

MERGED_LABEL = "merged"  # the merge's own column in the gate and the report: no parent may take this label

@dataclass
class Parent:
    """One parent as found on disk."""

    index: int
    path: Path
    label: str                      # its column in the report: the run or folder name
    weights_dir: Path               # adapter/ (adapters), model/ or the folder itself (models)
    run_cfg: object | None = None   # the run's RunConfig; None for a plain model folder
    manifest: dict = field(default_factory=dict)
    rank: int | None = None         # LoRA rank (adapters)
    base_id: str | None = None      # what identifies its base model: weights sha256, else model.name

    def describe(self) -> dict:
        """Its entry in the merged run's manifest."""
        export = self.run_cfg is not None and self.weights_dir == self.path  # OUT/hf of an exported run
        cfg_file = self.path.parent / "training_config.yaml" if export else self.path / runs.CONFIG_FILE
        return {"path": str(self.path), "label": self.label,
                "kind": "export" if export else "run" if self.run_cfg else "folder",
                "config_sha256": hashlib.sha256(cfg_file.read_bytes()).hexdigest() if cfg_file.is_file() else None,
                "base_model": self.run_cfg.model.name if self.run_cfg else None, "base_sha256": self.base_id,
                "method": self.run_cfg.train.method if self.run_cfg else None, "lora_r": self.rank,
                "git_sha": self.manifest.get("git_sha"), "finished": self.manifest.get("finished")}


def inspect(cfg: MergeConfig) -> tuple[list[Parent], str | None]:
    """Every parent checked (finished, the right kind, one base, ranks that fit the method), and the
    models' base as a model spec (a folder or an embedded name; None when not needed); raises one
    TunesmithError listing every problem."""
    lines = yaml_lines(cfg)
    errors = Collector(title=f"{cfg.config_path or 'merge config'}: the parents cannot be merged:")

    def bad(key: str, problem: str, fix: str) -> None:
        errors.add(problem, fix, file=cfg.config_path, line=lines.get(key), field=key)

    found = [_one(cfg, i, bad) for i in range(len(cfg.parents))]
    parents = [p for p in found if p is not None]
    base = _base(cfg.base, bad) if cfg.kind == "models" and cfg.base else None
    if len(parents) == len(found):
        if cfg.kind == "adapters":
            _check_adapters_fit(cfg, parents, bad)
        else:
            _check_models_fit(parents + ([Parent(-1, Path(base), "base", Path(base))] if base and
                                         Path(base, "config.json").is_file() else []), bad)
    errors.raise_if_any()
    taken = {MERGED_LABEL}  # a parent labelled "merged" would be gated against the merge's own scores
    for p in parents:  # two runs of the same name (from two folders) get distinct columns
        label, k = p.label, 1
        while label in taken:
            k += 1
            label = f"{p.label}-{k}"
        p.label = label
        taken.add(label)
    return parents, base


def _base(spec: str, bad) -> str | None:
    """The models' base as something models.loading.resolve takes: a full fine-tune run's model/
    folder, a model folder, or an embedded (or hub) name."""
    from tunesmith.errors import TunesmithError
    from tunesmith.models.loading import resolve

    path = Path(spec)
    if runs.is_run_dir(path):
        if not (path / "model").is_dir():
            bad("base", f"run {path} trained an adapter, so it holds no full model to merge from",
                "name the model that run was trained on (its model.name), or a full fine-tune run")
            return None
        return str(path / "model")
    try:
        resolve(spec)
    except TunesmithError as e:
        bad("base", e.problems[0].problem, e.problems[0].fix or "name a model folder, a run or an embedded model")
        return None
    return spec


def _one(cfg: MergeConfig, i: int, bad) -> Parent | None:
    key = f"parents[{i}].path"
    path = Path(cfg.parents[i].path)
    if not path.exists():
        near = None
        if cfg.config_path:  # the user may have meant a path relative to the current directory
            near = Path(os.path.relpath(path, Path(cfg.config_path).parent))
            near = near if (Path.cwd() / near).exists() else None
        bad(key, f"{path} does not exist", "paths are relative to the merge config's folder"
            + (f"; {near} exists relative to the current directory: write it relative to the config file, "
               "or absolute" if near else ""))
        return None
    if runs.is_run_dir(path):
        return _run_parent(cfg, i, path, bad)
    if cfg.kind == "models" and (path / "config.json").is_file():
        return _folder_parent(i, path)
    want = "a finished LoRA run" if cfg.kind == "adapters" else "a finished full fine-tune run or a model folder"
    bad(key, f"{path} is not a run directory (config.yaml + manifest.json)"
        + (" nor a model folder (config.json)" if cfg.kind == "models" else ""), f"point it at {want}")
    return None


def _folder_parent(i: int, path: Path) -> Parent:
    """A model folder. A tunesmith export (OUT/hf beside OUT/export_manifest.json, what a LoRA run
    becomes for kind: models) takes its finished run's name, config and manifest, so the merge lists
    that run's data and licences and its run config has the run's data section."""
    from tunesmith.config import load_config
    from tunesmith.errors import TunesmithError

    export = path.parent / "export_manifest.json"
    try:
        run = Path(json.loads(export.read_text(encoding="utf-8"))["run"]) if export.is_file() else None
    except (ValueError, KeyError, TypeError):
        run = None
    manifest = (runs.read_manifest(run) or {}) if run is not None and runs.is_run_dir(run) else {}
    if path.name != "hf" or manifest.get("status") != "completed":
        return Parent(i, path, path.name, path)
    try:
        run_cfg = load_config(run / runs.CONFIG_FILE)
    except TunesmithError:  # a run of an older tunesmith: the folder alone
        return Parent(i, path, path.name, path)
    return Parent(i, path, run.name, path, run_cfg, manifest,
                  base_id=(manifest.get("model") or {}).get("sha256") or run_cfg.model.name)


def _run_parent(cfg: MergeConfig, i: int, path: Path, bad) -> Parent | None:
    from tunesmith.config import load_config
    from tunesmith.errors import TunesmithError
    from tunesmith.export.merge import GENERATIVE_RECIPES

    key = f"parents[{i}].path"
    manifest = runs.read_manifest(path) or {}
    if manifest.get("status") != "completed":
        bad(key, f"run {path} is not finished (status: {manifest.get('status')})",
            "finish it first (`tunesmith train` on its config resumes it), or merge another run")
        return None
    try:
        run_cfg = load_config(path / runs.CONFIG_FILE)
    except TunesmithError as e:
        bad(key, f"run {path} has a config that no longer loads: {e}", "retrain it with this tunesmith version")
        return None
    if run_cfg.recipe not in GENERATIVE_RECIPES:
        bad(key, f"run {path} is a recipe: {run_cfg.recipe} run (a sequence classifier); merges make models that "
            "generate", f"merge runs of recipe {', '.join(GENERATIVE_RECIPES)}")
        return None
    base_id = (manifest.get("model") or {}).get("sha256") or run_cfg.model.name
    if cfg.kind == "models":
        if not (path / "model").is_dir():
            bad(key, f"run {path} trained an adapter (train.method: {run_cfg.train.method}), not a full model",
                "merge LoRA runs with kind: adapters, or export this run (tunesmith export RUN) and name "
                "RUN/export/hf here")
            return None
        return Parent(i, path, path.name, path / "model", run_cfg, manifest, base_id=base_id)
    if run_cfg.train.method != "lora" or not (path / "adapter" / "adapter_config.json").is_file():
        bad(key, f"run {path} has train.method: {run_cfg.train.method}; adapter merges combine LoRA adapters",
            "merge LoRA runs (train.method: lora), or full fine-tunes with kind: models")
        return None
    try:
        adapter = json.loads((path / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    except ValueError as e:
        bad(key, f"{path / 'adapter' / 'adapter_config.json'} is not valid JSON ({e})",
            "restore the run's adapter/ folder, or retrain it")
        return None
    if adapter.get("target_parameters"):
        bad(key, f"run {path} adapted weight tensors of a mixture-of-experts model (moe.targets experts or router: "
            f"target_parameters {adapter['target_parameters']}), which peft's add_weighted_adapter cannot merge",
            "merge runs trained with moe.targets shared or attention only, or export the runs (tunesmith export "
            "RUN) and merge their RUN/export/hf folders with kind: models")
        return None
    if adapter.get("use_dora"):
        bad(key, f"run {path} trained DoRA (lora.use_dora): peft's merge ignores DoRA's magnitude vectors, so the "
            "merged adapter would not contain this parent's skill", "merge plain LoRA (or rsLoRA) runs")
        return None
    rank = max([int(adapter.get("r") or 0), *(int(v) for v in (adapter.get("rank_pattern") or {}).values())])
    return Parent(i, path, path.name, path / "adapter", run_cfg, manifest, rank, base_id)


def _check_adapters_fit(cfg: MergeConfig, parents: list[Parent], bad) -> None:
    first = parents[0]
    for p in parents[1:]:
        if p.base_id != first.base_id:
            bad(f"parents[{p.index}].path", f"run {p.path} was trained on {p.run_cfg.model.name}, run {first.path} "
                f"on {first.run_cfg.model.name} (a different base model's weights)",
                "adapter merges need parents trained on the same base; merge full models with kind: models")
        elif (p.run_cfg.model.rope_scaling, p.run_cfg.model.rope_factor) != (
                first.run_cfg.model.rope_scaling, first.run_cfg.model.rope_factor):
            bad(f"parents[{p.index}].path", f"run {p.path} stretched its positions differently (model.rope_scaling "
                f"{p.run_cfg.model.rope_scaling} x{p.run_cfg.model.rope_factor}) from run {first.path}",
                "merge runs trained with the same model.rope_scaling and rope_factor")
    ranks = {p.label: p.rank for p in parents}
    if cfg.method in EQUAL_RANK and len(set(ranks.values())) > 1:
        bad("method", f"{cfg.method} adds the parents' LoRA factors elementwise, which needs one rank, but the "
            "ranks differ: " + ", ".join(f"{k} r={v}" for k, v in ranks.items()),
            "use cat, svd, ties_svd, dare_ties_svd, dare_linear_svd or magnitude_prune_svd (any ranks), or "
            "retrain the parents with one lora.r")


def _check_models_fit(parents: list[Parent], bad) -> None:
    """Parents mergekit can combine: one architecture and the same tensor shapes (from config.json)."""
    shape_keys = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size",
                  "num_attention_heads", "num_key_value_heads")

    def shape(p: Parent) -> dict:
        raw = json.loads((p.weights_dir / "config.json").read_text(encoding="utf-8"))
        return {k: raw.get(k) for k in shape_keys}

    first = shape(parents[0])
    for p in parents[1:]:
        diff = {k: (first[k], v) for k, v in shape(p).items() if v != first[k]}
        if diff:
            key = f"parents[{p.index}].path" if p.index >= 0 else "base"
            bad(key, f"{p.weights_dir} has another architecture than {parents[0].weights_dir}: "
                + ", ".join(f"{k} {b} vs {a}" for k, (a, b) in diff.items()),
                "merge models fine-tuned from one base model")
