"""The merge config (MERGE.yaml): typed like a run config, loaded once, read-only afterwards.

Unknown keys get a did-you-mean and every type error carries its YAML line (the run config's
loader, tunesmith/config_build.py); then the range and cross-field checks below run, and every
problem is reported together. Nothing here touches the parents on disk: parents.py checks them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tunesmith.config import EVAL_DTYPES, _f
from tunesmith.config_build import build, parse_override, read_yaml, set_dotted
from tunesmith.errors import Collector

# peft's combination types (LoraModel.add_weighted_adapter). The plain ones combine the A and the
# B factors separately; the *_svd ones combine the full deltas B @ A, then factor them back by SVD.
ADAPTER_METHODS = ("linear", "cat", "svd", "ties", "ties_svd", "dare_linear", "dare_linear_svd", "dare_ties",
                   "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
# mergekit's merge methods offered for full models.
MODEL_METHODS = ("linear", "slerp", "ties", "dare_ties", "dare_linear", "task_arithmetic", "model_stock")
METHOD = Literal["linear", "cat", "svd", "ties", "ties_svd", "dare_linear", "dare_linear_svd", "dare_ties",
                 "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd", "slerp", "task_arithmetic",
                 "model_stock"]
# Methods that drop part of each delta: they read `density`.
SPARSE = ("ties", "ties_svd", "dare_linear", "dare_linear_svd", "dare_ties", "dare_ties_svd", "magnitude_prune",
          "magnitude_prune_svd")
# peft: methods that add the A and B factors elementwise, so every parent needs the same rank.
EQUAL_RANK = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
# mergekit: methods that read the shared base model (slerp's base is the first parent).
NEEDS_BASE = ("ties", "dare_ties", "dare_linear", "task_arithmetic", "model_stock")


@dataclass(frozen=True)
class ParentConfig:
    path: str = _f("", "A finished run directory, relative to this file: a LoRA run (kind: adapters) or a full "
                   "fine-tune (kind: models); kind: models also takes a transformers model folder.")
    weight: float = _f(1.0, "This parent's weight in the merge (peft's and mergekit's `weight`; negative "
                       "subtracts a skill). Ignored by slerp (see t) and model_stock.")
    eval_suite: str | None = _f(None, "Eval suite (YAML, see configs/eval/) that measures this parent's skill, "
                                "relative to this file: the merge is kept only if it scores within `tolerance` "
                                "of this parent on it. None: this parent is not gated.")
    tolerance: float = _f(0.05, "Largest drop allowed from this parent's score to the merge's, absolute, in "
                          "each gated metric's own direction (0.05: 5 points of a 0..1 accuracy).")
    metrics: list[str] = _f([], "Gated metrics as 'task/metric' (e.g. records/json_match). Empty: each task's "
                            "primary metric: its first listed generation metric, else the first it reports "
                            "(acc, accuracy, eval_loss).")


@dataclass(frozen=True)
class GateConfig:
    limit: int | None = _f(None, "Rows per task, replacing the suites' own limit (None: the suites' own).")
    dtype: Literal[EVAL_DTYPES] = _f(EVAL_DTYPES[0], "Weights during the gate's evaluations (as eval.dtype).")
    samples: int = _f(3, "Sample outputs per task shown side by side in the report.")
    cross: bool = _f(True, "Also evaluate every parent on the other parents' suites, so the report shows each "
                     "parent and the merge on every suite (false: each parent on its own suite only, faster).")


@dataclass(frozen=True)
class MergeConfig:
    name: str | None = _f(None, "Run name; the merged run is <output_dir>/<name>. Defaults to the file's stem.")
    output_dir: str = _f("runs", "Folder that holds run directories (relative to the current directory).")
    overwrite: bool = _f(False, "Replace a finished (or rejected) merge of the same name instead of refusing.")
    kind: Literal["adapters", "models"] = _f(
        "adapters", "adapters: LoRA runs on one base, merged with peft's add_weighted_adapter into one adapter; "
        "models: full models (full fine-tune runs or model folders), merged with mergekit into one checkpoint.")
    method: METHOD = _f(
        "ties", "adapters: linear, cat, svd, ties, dare_linear, dare_ties, magnitude_prune, and the *_svd forms "
        "of the last four (they combine the full deltas B@A, then factor them by SVD: any ranks). models: "
        "linear, slerp, ties, dare_ties, dare_linear, task_arithmetic, model_stock.")
    parents: list[ParentConfig] = _f([], "The runs (or model folders) to merge, at least two.")
    base: str | None = _f(None, "kind: models: the model the parents were fine-tuned from (a run, a model folder "
                          "relative to this file, or an embedded name); ties, dare_*, task_arithmetic and "
                          "model_stock need it. kind: adapters: leave unset, the parents' own base is used.")
    density: float = _f(0.5, "ties, dare_* and magnitude_prune: the fraction of each delta kept (0, 1]; "
                        "1.0 keeps every value (TIES then only resolves sign conflicts).")
    majority_sign: Literal["total", "frequency"] = _f(
        "total", "adapters, ties and dare_ties: how the sign of each value is elected: total (the sign of the "
        "summed values, as in the TIES paper) or frequency (the sign most parents have).")
    svd_rank: int | None = _f(None, "adapters, *svd methods: rank of the merged adapter (None: the largest parent "
                              "rank).")
    t: float = _f(0.5, "slerp: where the merge sits between the first parent (0) and the second (1).")
    normalize: bool | None = _f(None, "models, linear and ties-type methods: divide by the sum of the weights "
                                "(None: mergekit's default for the method: on for linear and ties).")
    dtype: Literal["float32", "bfloat16", "float16"] = _f(
        "float32", "models: dtype of the merge's arithmetic and of the merged weights.")
    seed: int = _f(0, "Seed of the random drops of dare_* methods.")
    gate: GateConfig = _f(GateConfig, "How the parents' eval suites are run to gate the merge.")
    config_path: str | None = _f(None, "Set by the loader: the YAML file this config came from.")


def load_merge_config(source: str | Path | dict, overrides: list[str] | dict | None = None) -> MergeConfig:
    """A merge config from YAML (or a dict) plus dotted overrides, every problem reported at once.
    Relative parent, suite and base paths resolve against the file's folder."""
    file, lines, base_dir = None, {}, Path.cwd()
    if isinstance(source, dict):
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in source.items()}
    else:
        path = Path(source)
        raw, lines = read_yaml(path)
        file, base_dir = str(path), path.resolve().parent
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides or []]
    for key, value in items:
        set_dotted(raw, key, value)
        lines.pop(key, None)
    errors = Collector(title=f"{file}: invalid merge config:" if file else "invalid merge config:")
    cfg = build(MergeConfig, raw, "", errors, lines, file)
    if cfg is not None and not errors.problems:
        cfg = _resolve(cfg, base_dir, file)

        def bad(key: str, problem: str, fix: str) -> None:
            errors.add(problem, fix, file=file, line=lines.get(key), field=key)

        check(cfg, bad)
    errors.raise_if_any()
    return cfg


def yaml_lines(cfg: MergeConfig) -> dict[str, int]:
    """The line of every key in the file the config came from ({} for a dict), for later errors."""
    if not cfg.config_path or not Path(cfg.config_path).is_file():
        return {}
    return read_yaml(Path(cfg.config_path))[1]


def _resolve(cfg: MergeConfig, base_dir: Path, file: str | None) -> MergeConfig:
    def res(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base_dir / q).resolve())

    parents = [dataclasses.replace(p, path=res(p.path) if p.path else "",
                                   eval_suite=res(p.eval_suite) if p.eval_suite else None) for p in cfg.parents]
    base = cfg.base
    if base and (base_dir / Path(base).expanduser()).exists():  # else an embedded name (or a path reported later)
        base = res(base)
    return dataclasses.replace(cfg, parents=parents, base=base, name=cfg.name or (Path(file).stem if file else "merge"),
                               config_path=str(Path(file).resolve()) if file else None)


def check(cfg: MergeConfig, bad) -> None:
    """Ranges and combinations, each problem at its key (bad(key, problem, fix))."""
    methods = ADAPTER_METHODS if cfg.kind == "adapters" else MODEL_METHODS
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", cfg.name or ""):
        bad("name", f"{cfg.name!r} is not a plain folder name", "use letters, digits, '.', '_' and '-' only")
    if cfg.method not in methods:
        other = "models" if cfg.kind == "adapters" else "adapters"
        bad("method", f"{cfg.method!r} is not a merge method for kind: {cfg.kind}",
            f"use one of {', '.join(methods)}" + (f" (or kind: {other})" if cfg.method in
                                                  (MODEL_METHODS if other == "models" else ADAPTER_METHODS) else ""))
    n = len(cfg.parents)
    if n < 2:
        bad("parents", f"{n} parent{'s' * (n != 1)} given: a merge needs at least two",
            "list the runs to merge under parents:, each as - path: runs/NAME")
    elif cfg.method == "slerp" and n != 2:
        bad("parents", f"slerp interpolates between exactly two parents, {n} given",
            "keep two parents, or use linear, ties or model_stock for more")
    for i, p in enumerate(cfg.parents):
        key = f"parents[{i}]"
        if not p.path:
            bad(f"{key}.path", "no path given", "set path: to a finished run directory (runs/NAME)")
        if p.tolerance < 0:
            bad(f"{key}.tolerance", f"{p.tolerance} is negative", "use an allowed drop >= 0, e.g. 0.05")
        if p.metrics and not p.eval_suite:
            bad(f"{key}.metrics", "gated metrics are named but no eval_suite measures them",
                "set eval_suite, or drop metrics")
        for m in p.metrics:
            if m.count("/") != 1 or not all(m.split("/")):
                bad(f"{key}.metrics", f"{m!r} is not 'task/metric'", "e.g. records/json_match")
        if p.weight == 0:
            bad(f"{key}.weight", "a weight of 0 leaves this parent out of the merge", "use e.g. 1.0, or drop it")
    _check_method_settings(cfg, bad)


def _check_method_settings(cfg: MergeConfig, bad) -> None:
    if cfg.method in SPARSE or (cfg.kind == "models" and cfg.method in ("ties", "dare_ties", "dare_linear")):
        if not 0 < cfg.density <= 1:
            bad("density", f"{cfg.density} is outside (0, 1]", "use the fraction of each delta kept, e.g. 0.5")
    if cfg.kind == "adapters":
        if cfg.base is not None:
            bad("base", "adapter merges use the base model their parents were trained on",
                "remove base (it is read from the parent runs)")
        if cfg.svd_rank is not None and cfg.svd_rank < 1:
            bad("svd_rank", f"{cfg.svd_rank} is not a rank", "use a positive rank, e.g. 16, or null")
        if cfg.svd_rank is not None and not cfg.method.endswith("svd"):
            bad("svd_rank", f"method {cfg.method} does not factor by SVD, so svd_rank does nothing",
                "remove svd_rank, or use svd, ties_svd, dare_ties_svd, dare_linear_svd or magnitude_prune_svd")
    else:
        if cfg.method in NEEDS_BASE and not cfg.base:
            bad("base", f"{cfg.method} merges the parents' differences from their common base, and no base is given",
                "set base: to the model the parents were fine-tuned from (a run, folder or embedded name)")
        if cfg.method == "slerp" and cfg.base:
            bad("base", "slerp interpolates from the first parent to the second and reads no other base",
                "remove base")
        if cfg.method == "linear" and cfg.base:  # mergekit would fail late: "Missing required parameter weight"
            bad("base", "linear averages the parents' weights and reads no base",
                "remove base, or use task_arithmetic (or ties, dare_*) to add the parents' differences to it")
        if cfg.majority_sign != "total":
            bad("majority_sign", "mergekit's ties elects signs by their summed values (total) only",
                "remove majority_sign, or use kind: adapters")
        if cfg.svd_rank is not None:
            bad("svd_rank", "svd_rank applies to adapter merges", "remove svd_rank")
    if cfg.method == "slerp" and not 0 <= cfg.t <= 1:
        bad("t", f"{cfg.t} is outside [0, 1]", "use e.g. 0.5 (halfway between the two parents)")
    if cfg.gate.limit is not None and cfg.gate.limit < 1:
        bad("gate.limit", f"{cfg.gate.limit} rows evaluates nothing", "use a positive count, or null")
    if cfg.gate.samples < 0:
        bad("gate.samples", f"{cfg.gate.samples} is negative", "use 0 or more")


def describe() -> list[tuple[str, str, object, str]]:
    """(dotted key, type, default, help) of every merge config field: the merge config reference."""
    from tunesmith.config import describe as describe_tree

    return describe_tree(MergeConfig)
