"""Hyperparameter search: `tunesmith sweep CONFIG` runs one training run per trial and keeps the best.

The search is optuna's (TPE sampler seeded with the config's seed, median pruner on the periodic
evaluations); every trial is an ordinary run made by `tunesmith.train` with the sampled values as
overrides, so a trial's run directory is like any other (config, manifest, adapter, metrics).

<output_dir>/<name>-sweep/
  <name>-trial-000/ ...   each trial's run directory
  sweep.json              every trial: number, params, state, metric value, run directory, error
  results.md              the trials as a table, best first

Both files are rewritten after every trial (and when a trial starts), so a crash loses nothing.
"""

from __future__ import annotations

import difflib
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config import RunConfig, describe, load_config, to_dict
from tunesmith.errors import Collector, Problem, TunesmithError, fail

KINDS = ("loguniform", "uniform", "int", "choice")
# Keys the sweep itself sets for every trial (or that describe the sweep): never searched.
RESERVED = ("name", "output_dir", "overwrite")
# Result keys every recipe reports from the training data alone; any other metric needs validation data.
TRAIN_METRICS = ("train_loss", "steps", "train_seconds", "tokens_seen", "tokens_per_s")
EXAMPLE = "e.g. train.learning_rate: 'loguniform(5e-5, 1e-3)', lora.r: 'choice(8, 16, 32)'"


@dataclass(frozen=True)
class Range:
    """One parsed range of the search space."""

    kind: str  # loguniform | uniform | int | choice
    values: tuple  # (low, high) for the numeric kinds, the options for choice

    def bounds(self) -> tuple:
        """The values that must all type-check: both ends of a numeric range, every option."""
        return self.values

    def suggest(self, trial, key: str):
        if self.kind == "choice":
            return trial.suggest_categorical(key, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(key, *self.values)
        return trial.suggest_float(key, *self.values, log=self.kind == "loguniform")

    def contains(self, value) -> bool:
        if self.kind == "choice":
            return value in self.values
        return self.values[0] <= value <= self.values[1]


# --------------------------------------------------------------------------- the search space


def parse_range(text) -> Range:
    """'loguniform(1e-5, 1e-3)' -> Range; raises ValueError saying what is wrong."""
    import yaml

    m = re.fullmatch(r"\s*([A-Za-z_]+)\s*\((.*)\)\s*", str(text), flags=re.S)
    if not m:
        raise ValueError("not of the form kind(arguments)")
    kind, inner = m.group(1).lower(), m.group(2)
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.5)
        raise ValueError(f"unknown range kind {kind!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    try:  # YAML reads the arguments like a config value: 8 -> int, 1e-4 -> float, cosine -> str
        args = yaml.safe_load(f"[{inner}]")
    except yaml.YAMLError:
        raise ValueError("the arguments do not parse") from None
    args = [float(a) if isinstance(a, str) and _is_float(a) else a for a in args]  # YAML 1.1 reads 1e-4 as text
    if kind == "choice":
        if not args:
            raise ValueError("choice() has no options")
        if any(isinstance(a, (list, dict)) for a in args):
            raise ValueError("choice() options must be single values (a number, text, true/false)")
        if len(set(map(repr, args))) < len(args):
            raise ValueError(f"choice() lists an option twice: {args}")
        return Range(kind, tuple(args))
    if len(args) != 2:
        raise ValueError(f"{kind}() takes two numbers (low, high), got {len(args)}")
    if kind == "int":
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ValueError(f"int() takes two whole numbers, got {args}")
    elif not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args):
        raise ValueError(f"{kind}() takes two numbers, got {args}")
    low, high = args if kind == "int" else (float(args[0]), float(args[1]))
    if not low < high:
        raise ValueError(f"low {low} is not below high {high}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"loguniform() needs a positive low end, got {low}")
    return Range(kind, (low, high))


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_space(cfg: RunConfig) -> dict[str, Range]:
    """The parsed search space of `cfg.sweep.space`, every key and range checked up front.

    Each key must be a config field the sweep does not set itself; each range must parse; both
    ends of every numeric range and every choice must pass the config's own checks (types, value
    ranges, cross-field rules), so a bad space fails now instead of in trial 5. All problems are
    collected and raised together.
    """
    if not cfg.sweep.space:
        raise fail("the sweep has no search space", f"add a sweep.space section, {EXAMPLE}", field="sweep.space")
    types = {key: tp for key, tp, _, _ in describe()}
    errors = Collector(title="invalid sweep.space:")
    space: dict[str, Range] = {}
    for key, text in cfg.sweep.space.items():
        field = f"sweep.space.{key}"
        if key not in types:
            close = difflib.get_close_matches(key, list(types), n=1, cutoff=0.6)
            errors.add(f"{key!r} is not a config key", f"did you mean '{close[0]}'?" if close else
                       "`tunesmith config` lists every key", field=field)
            continue
        if key in RESERVED or key.startswith("sweep."):
            errors.add(f"{key} is set by the sweep itself, so it cannot be searched", "remove it from sweep.space",
                       field=field)
            continue
        if "[]" in key or any(k.startswith(f"{key}[]") for k in types):
            errors.add(f"{key} is a list of sections, which a range cannot describe",
                       "search a plain key instead, or run one sweep per data mix", field=field)
            continue
        try:
            rng = parse_range(text)
        except ValueError as e:
            errors.add(f"{text!r}: {e}", "write a range as 'loguniform(1e-5, 1e-3)', 'uniform(0.0, 0.1)', "
                       "'int(1, 4)' or 'choice(8, 16, 32)'", field=field)
            continue
        if rng.kind in ("uniform", "loguniform") and types[key] == "int":
            low, high = rng.values
            errors.add(f"{key} holds whole numbers, but {rng.kind}() samples fractions",
                       f"use 'int({int(low)}, {int(high)})' or a choice()", field=field)
            continue
        space[key] = rng
    errors.raise_if_any()
    base = _raw(cfg)
    for key, rng in space.items():  # the config's own checks on each end of each range
        for value in rng.bounds():
            try:
                load_config(base, {key: value})
            except TunesmithError as e:
                for p in e.problems:
                    errors.add(f"{key}={value!r} (from {cfg.sweep.space[key]!r}) is refused by the config: "
                               f"{p.field + ': ' if p.field and p.field != key else ''}{p.problem}",
                               p.fix, field=f"sweep.space.{key}")
    errors.raise_if_any()
    return space


def _raw(cfg: RunConfig) -> dict:
    """The resolved config as a dict that load_config takes back (paths are already absolute)."""
    raw = to_dict(cfg)
    raw.pop("config_path", None)
    return raw


def _check_metric(cfg: RunConfig) -> None:
    d = cfg.data
    if cfg.sweep.metric not in TRAIN_METRICS and not (d.validation or d.validation_fraction > 0):
        raise fail(f"metric {cfg.sweep.metric!r} is measured on validation data, but the config has none",
                   "set data.validation_fraction (e.g. 0.1) or data.validation, or sweep.metric=train_loss",
                   field="sweep.metric")


# --------------------------------------------------------------------------- pruning


def pruning_callback(trial, metric: str):
    """A TrainerCallback reporting the metric of every evaluation during training to the optuna
    trial, and stopping training with optuna.TrialPruned when the pruner says so.

    Evaluations after training (a recipe's own final evaluate()) are not reported: the run is
    already finished and pruning it then would only throw its adapter away. Likewise an evaluation
    at the last step never prunes.
    """
    import optuna
    from transformers import TrainerCallback

    class PruningCallback(TrainerCallback):
        def __init__(self):
            self.training, self.pruned_at, self.reported = False, None, 0

        def on_train_begin(self, args, state, control, **kw):
            self.training = True

        def on_train_end(self, args, state, control, **kw):
            self.training = False

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            metrics = metrics or {}
            value = metrics.get(metric, metrics.get(f"eval_{metric}"))  # classify reports eval_accuracy as accuracy
            if not self.training or value is None:
                return
            trial.report(float(value), state.global_step)
            self.reported += 1
            if state.global_step < state.max_steps and trial.should_prune():
                self.pruned_at = state.global_step
                raise optuna.TrialPruned(f"pruned at step {state.global_step}: {metric} {value:.4g} is worse than "
                                         "the median of earlier trials there")

    return PruningCallback()


def _pruner(cfg: RunConfig) -> tuple[object, dict]:
    """The optuna pruner and a note for sweep.json saying whether pruning can act, and why not."""
    import optuna

    metric = cfg.sweep.metric
    if cfg.sweep.pruner == "none":
        return optuna.pruners.NopPruner(), {"pruner": "none", "active": False}
    # Decided: a median pruner without periodic evaluation warns instead of refusing. pruner: median
    # is the default, and a sweep that only compares final values is still a valid sweep.
    if cfg.train.eval_steps == 0:
        why = "train.eval_steps=0 (evaluation only at the end); set train.eval_steps (e.g. 20) to prune"
    elif metric in TRAIN_METRICS:
        why = f"metric {metric} is not measured by the periodic evaluations; use an eval metric to prune"
    else:
        why = None
    if why:
        return optuna.pruners.NopPruner(), {"pruner": "median", "active": False, "why": why}
    # optuna waits for 5 finished trials by default; in an 8-trial sweep that leaves 3 prunable. A
    # third of the trials (at least 1, at most 5) gives the median something to stand on sooner.
    startup = max(1, min(5, cfg.sweep.trials // 3))
    return (optuna.pruners.MedianPruner(n_startup_trials=startup),
            {"pruner": "median", "active": True, "n_startup_trials": startup})


# --------------------------------------------------------------------------- the sweep


def run_sweep(config: RunConfig | str | Path | dict, overrides: list[str] | dict | None = None, *,
              trials: int | None = None, show_progress: bool = False, pruner=None) -> dict:
    """Search the config's `sweep.space`: one training run per trial. Returns the best trial as
    {best_trial, best_params, best_value, best_run_dir, sweep_dir, metric, direction, trials}.

    `trials` replaces sweep.trials; `pruner` (an optuna pruner) replaces the one sweep.pruner names.
    A trial that fails is recorded with its error and the sweep goes on; if no trial completes,
    TunesmithError lists why.
    """
    import optuna

    from tunesmith.api import _config, train

    if trials is not None:
        overrides = ({**overrides, "sweep.trials": trials} if isinstance(overrides, dict)
                     else [*(overrides or []), f"sweep.trials={trials}"])
    cfg = _config(config, overrides)
    space = check_space(cfg)
    _check_metric(cfg)
    sweep_dir = Path(cfg.output_dir) / f"{cfg.name}-sweep"
    if (sweep_dir / "sweep.json").exists():
        if not cfg.overwrite:
            raise fail(f"{sweep_dir} holds an earlier sweep", "pick another name (name=...) or replace it "
                       "(overwrite=true)", field="name")
        shutil.rmtree(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if pruner is None:
        pruner, pruning = _pruner(cfg)
    else:
        pruning = {"pruner": type(pruner).__name__, "active": True}
    if not pruning["active"] and pruning.get("why"):
        print(f"tunesmith: pruning is inactive: {pruning['why']}", flush=True)
    s = cfg.sweep
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our per-trial lines replace optuna's log
    try:
        study = optuna.create_study(study_name=f"{cfg.name}-sweep", direction=s.direction, pruner=pruner,
                                    sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    state = {"name": cfg.name, "config": cfg.config_path, "sweep_dir": str(sweep_dir), "metric": s.metric,
             "direction": s.direction, "space": dict(s.space), "trials_planned": s.trials,
             "sampler": {"name": "TPESampler", "seed": cfg.seed}, "pruning": pruning, "status": "running",
             "trials": [], "best": None}
    base = _raw(cfg)
    t0 = time.time()
    for _ in range(s.trials):
        if s.timeout_minutes is not None and time.time() - t0 > s.timeout_minutes * 60:
            state["status"] = f"stopped: sweep.timeout_minutes={s.timeout_minutes} reached"
            print(f"tunesmith: {state['status']}", flush=True)
            break
        trial = study.ask()
        params = {key: rng.suggest(trial, key) for key, rng in space.items()}
        name = f"{cfg.name}-trial-{trial.number:03d}"
        record = {"number": trial.number, "params": params, "state": "running", "value": None,
                  "run_dir": str(sweep_dir / name), "seconds": None}
        state["trials"].append(record)
        _write(sweep_dir, state)
        try:
            _run_trial(study, trial, record, lambda callback, params=params, name=name: train(
                base, {**params, "name": name, "output_dir": str(sweep_dir)}, show_progress=show_progress,
                callbacks=(callback,)), s.metric)
        except KeyboardInterrupt:
            state["status"] = "interrupted"
            _write(sweep_dir, state)
            raise
        except _MissingMetric as e:  # every trial would miss it: stop instead of training the rest
            state["status"] = "failed"
            _write(sweep_dir, state)
            raise fail(str(e), "set sweep.metric to one of those keys", field="sweep.metric") from None
        _release_memory()
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if done:
            b = study.best_trial
            state["best"] = {"number": b.number, "value": b.value, "params": b.params,
                             "run_dir": state["trials"][b.number]["run_dir"]}
        _write(sweep_dir, state)
        shown = f" {s.metric} {record['value']:.4f}" if record["value"] is not None else ""
        if record.get("pruned_at_step") is not None:
            shown += f" at step {record['pruned_at_step']}"
        print(f"tunesmith: trial {trial.number:03d} {record['state']}{shown} in {record['seconds']} s; "
              f"{_params_text(params)}" + (f"; {record['error']}" if record["state"] == "failed" else ""), flush=True)
    if state["status"] == "running":
        state["status"] = "finished"
    if state["best"] is None:
        state["status"] = "failed: no trial completed"
        _write(sweep_dir, state)
        failed = [t for t in state["trials"] if t["state"] == "failed"]
        if failed and len(failed) == len(state["trials"]):
            raise TunesmithError([Problem(f"trial {t['number']:03d}: {t['error']}") for t in failed],
                                 title=f"all {len(failed)} trials failed (details in {sweep_dir / 'sweep.json'}):")
        raise fail(f"no trial completed ({len(state['trials'])} run, {len(failed)} failed, the rest pruned)",
                   "run more trials, or set sweep.pruner=none", field="sweep")
    _write(sweep_dir, state)
    best = state["best"]
    return {"best_trial": best["number"], "best_params": best["params"], "best_value": best["value"],
            "best_run_dir": best["run_dir"], "sweep_dir": str(sweep_dir), "metric": s.metric,
            "direction": s.direction, "trials": state["trials"]}


class _MissingMetric(Exception):
    pass


def _run_trial(study, trial, record: dict, train_one, metric: str) -> None:
    """Train one trial (`train_one(callback)` returns its run directory) and tell optuna how it
    ended: complete, pruned or failed; `record` gets the state, value, error and seconds. Only an
    interrupt and a metric the runs do not report escape (after being recorded)."""
    import traceback

    import optuna

    TrialState = optuna.trial.TrialState
    callback = pruning_callback(trial, metric)
    started = time.time()
    try:
        value = _metric(train_one(callback), metric)
    except optuna.TrialPruned as e:
        study.tell(trial, state=TrialState.PRUNED)
        last = study.trials[trial.number].intermediate_values
        record.update(state="pruned", value=last[max(last)] if last else None, error=str(e),
                      pruned_at_step=callback.pruned_at)
    except (KeyboardInterrupt, _MissingMetric) as e:
        study.tell(trial, state=TrialState.FAIL)
        record.update(state="failed", error=str(e) or "interrupted", seconds=round(time.time() - started, 1))
        raise
    except Exception as e:  # noqa: BLE001 - one bad trial (OOM, diverged, bad value) must not end the sweep
        study.tell(trial, state=TrialState.FAIL)
        record.update(state="failed", error=str(e) if isinstance(e, TunesmithError) else f"{type(e).__name__}: {e}")
        if not isinstance(e, TunesmithError):
            record["traceback"] = traceback.format_exc(limit=8)
    else:
        study.tell(trial, value)
        record.update(state="complete", value=value)
    record["seconds"] = round(time.time() - started, 1)


def _metric(run_dir: Path, metric: str) -> float:
    from tunesmith.runs import read_manifest

    result = (read_manifest(run_dir) or {}).get("result", {})
    if metric not in result or not isinstance(result[metric], (int, float)):
        keys = sorted(k for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise _MissingMetric(f"the run's result has no metric {metric!r}; it has {', '.join(keys)}")
    value = float(result[metric])
    if not math.isfinite(value):
        raise ValueError(f"{metric} is {value} (training diverged?)")
    return value


def _release_memory() -> None:
    """Trials run in one process: free the finished trial's model before the next one loads."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- reports


def results_table(state: dict) -> str:
    """The trials as a markdown table, best first: completed by metric, then pruned, failed, running."""
    sign = 1 if state["direction"] == "minimize" else -1
    order = {"complete": 0, "pruned": 1, "failed": 2, "running": 3}
    rows = sorted(state["trials"], key=lambda t: (order[t["state"]], sign * t["value"]
                                                  if t["state"] == "complete" else 0, t["number"]))
    keys = list(state["space"])
    esc = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = [f"# Sweep {state['name']}: {state['metric']} ({state['direction']})", "",
             f"| rank | trial | state | {state['metric']} | " + " | ".join(map(esc, keys))
             + " | seconds | run directory |",
             "|---:|---:|---|---:|" + "---:|" * len(keys) + "---:|---|"]
    for rank, t in enumerate(rows, 1):
        value = f"{t['value']:.4f}" if t["value"] is not None else ""
        if t["state"] == "pruned" and t.get("pruned_at_step") is not None:  # an intermediate value, not a final one
            value += f" (step {t['pruned_at_step']})"
        lines.append(f"| {rank} | {t['number']:03d} | {t['state']} | {value} | "
                     + " | ".join(esc(_fmt(t["params"].get(k, ""))) for k in keys)
                     + f" | {t['seconds'] if t['seconds'] is not None else ''} | {esc(t['run_dir'])} |")
    errors = [t for t in rows if t.get("error") and t["state"] == "failed"]
    if errors:
        lines += ["", "Failed trials:", ""] + [f"- trial {t['number']:03d}: {t['error']}" for t in errors]
    lines += ["", f"Status: {state['status']}."]
    if state["best"]:
        b = state["best"]
        lines.append(f"Best: trial {b['number']:03d}, {state['metric']} {b['value']:.4f}, {b['run_dir']}")
    return "\n".join(lines) + "\n"


def _write(sweep_dir: Path, state: dict) -> None:
    from tunesmith.runs import write_json

    write_json(sweep_dir / "sweep.json", state)
    tmp = sweep_dir / ".results.md.tmp"
    tmp.write_text(results_table(state), encoding="utf-8")
    tmp.replace(sweep_dir / "results.md")
