"""`tunesmith eval`: run a suite on a model, or on a run's base and tuned model, and write the report.

For a run directory both models see the same tasks, rows and prompts: the base model is the run's
adapter switched off (one load, identical weights otherwise), or the run's base checkpoint for a
full fine-tune. Everything lands in the output folder:

  eval/results.json        metrics per task and model (the report's input; schema in eval/report.py)
  eval/outputs/TASK.jsonl  every row: prompt, reference, each model's output and scores
  report.html, report.md   base vs tuned with deltas, regression flags, plots and sample outputs
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tunesmith import energy as energy_use
from tunesmith import runs
from tunesmith.config import EVAL_DTYPES, REGRESSION_THRESHOLD
from tunesmith.errors import fail
from tunesmith.eval import tasks as T

RESULTS = Path("eval") / "results.json"


@dataclass
class Subject:
    """A model under evaluation: its label in the report and how to get it ready."""

    label: str
    description: str
    enter: object  # () -> context manager yielding a Loaded


def _subjects(target: str, compare_base: bool, dtype: str = "float32") -> tuple[list[Subject], Path | None]:
    from tunesmith.inference import load as _load

    def load(name: str):
        loaded = _load(name)
        if dtype != "float32":
            # bf16 weights run the CPU's bf16 matmuls: ~4x the fp32 multiple-choice speed on an
            # AVX512-BF16 machine (bench/mc_throughput.py), at bf16's log-likelihood precision.
            import torch

            loaded.model.to(getattr(torch, dtype))
        return loaded

    path = Path(target)
    if not runs.is_run_dir(path):
        loaded = load(target)
        return [Subject("model", loaded.description, lambda: contextlib.nullcontext(loaded))], None
    tuned = load(target)
    subjects = []
    if compare_base:
        from tunesmith.config import load_config

        cfg = load_config(path / runs.CONFIG_FILE)
        if hasattr(tuned.model, "disable_adapter"):
            # The same object with the adapter off is exactly the base model: no second load.
            @contextlib.contextmanager
            def base_ctx():
                with tuned.model.disable_adapter():
                    yield tuned
            subjects.append(Subject("base", cfg.model.name, base_ctx))
        else:  # a full fine-tune: the base is a separate checkpoint
            subjects.append(Subject("base", cfg.model.name, lambda: contextlib.nullcontext(load(cfg.model.name))))
    subjects.append(Subject("tuned", tuned.description, lambda: contextlib.nullcontext(tuned)))
    return subjects, path


def _say(show: bool, text: str) -> None:
    if show:
        print(f"tunesmith eval: {text}", file=sys.stderr, flush=True)


def evaluate(target: str | Path, suite_path: str | Path, *, out: str | Path | None = None,
             limit: int | None = None, threshold: float = REGRESSION_THRESHOLD, compare_base: bool = True,
             judge: str | None = None, samples: int = 3, dtype: str = "float32",
             show_progress: bool = True, energy: dict | None = None) -> Path:
    """Run the suite; returns the folder holding report.html. A run directory is evaluated in place
    (base vs tuned) unless `out` is given; any other model writes to `out` (default evals/<model name>).
    `energy`: {enabled, country, region} of the energy measurement; None: a run directory's own
    energy section, else on with country USA."""
    suite = T.load_suite(suite_path, limit)
    target = str(target)
    if dtype not in EVAL_DTYPES:
        raise fail(f"dtype {dtype!r} is not supported for evaluation", "use float32 (exact) or bfloat16 (faster)")
    seconds, run_dir = {}, Path(target) if runs.is_run_dir(target) else None
    with energy_use.measure("eval", **_energy_settings(energy, run_dir)) as used:  # loading the models included
        subjects, run_dir = _subjects(target, compare_base, dtype)
        out = Path(out) if out else run_dir or Path("evals") / _slug(target)
        (out / "eval" / "outputs").mkdir(parents=True, exist_ok=True)
        encoder = _encoder_if_needed(suite)
        per_task: dict[str, dict] = {t.name: {"metrics": {}, "records": {}, "lengths": {}} for t in suite.tasks}
        for subject in subjects:
            start = time.perf_counter()
            with subject.enter() as loaded:
                for spec in suite.tasks:
                    t0 = time.perf_counter()
                    result = _run_task(loaded, spec, suite.batch_size, encoder)
                    slot = per_task[spec.name]
                    slot["metrics"][subject.label] = result.metrics
                    slot["records"][subject.label] = result.records
                    slot["lengths"][subject.label] = result.lengths
                    slot.setdefault("info", {}).update(result.info)
                    _say(show_progress, f"{subject.label}: {spec.name} ({spec.type}, {_n(result, spec)} rows) "
                         f"{_fmt(result.metrics)} in {time.perf_counter() - t0:.1f} s")
            seconds[subject.label] = round(time.perf_counter() - start, 1)
        _judge_tasks(suite, per_task, [s.label for s in subjects], judge, show_progress)
    results = _results(suite, subjects, per_task, seconds, samples)
    results["dtype"] = dtype
    if used:  # the report shows every stage measured so far: the run's training too, when evaluated in place
        results["energy"] = {"eval": used}
        if run_dir is not None and out == run_dir:
            energy_use.record(run_dir, "eval", used)
            results["energy"] = (runs.read_manifest(run_dir) or {}).get("energy") or results["energy"]
    for spec in suite.tasks:
        _write_outputs(out / "eval" / "outputs" / f"{spec.name}.jsonl", per_task[spec.name])
    runs.write_json(out / RESULTS, results)
    write_report(out, threshold=threshold, results=results)
    if run_dir is not None and out == run_dir:
        _note_in_manifest(run_dir, results, threshold)
        from tunesmith.tracking import log_results

        log_results(run_dir)  # the run's experiment trackers, when train.report_to named any
    _say(show_progress, f"report: {out / 'report.html'}")
    return out


def _energy_settings(energy: dict | None, run_dir: Path | None) -> dict:
    if energy is not None:
        return {**energy_use.DEFAULTS, **energy}
    if run_dir is not None:  # `tunesmith eval RUN` follows the run's own energy switch
        import yaml

        section = (yaml.safe_load((run_dir / runs.CONFIG_FILE).read_text(encoding="utf-8")) or {}).get("energy") or {}
        return {k: section.get(k, default) for k, default in energy_use.DEFAULTS.items()}
    return dict(energy_use.DEFAULTS)


def _note_in_manifest(run_dir: Path, results: dict, threshold: float) -> None:
    """The run's manifest says that it was evaluated, where the report is and what regressed."""
    from tunesmith.eval.report import compare

    rows = compare(results, threshold=threshold)
    manifest = runs.read_manifest(run_dir) or {}
    manifest["eval"] = {"suite": results["suite"], "suite_sha256": results["suite_sha256"], "report": "report.html",
                        "threshold": threshold, "improved": sum(1 for r in rows if r.get("better") is True),
                        "regressions": [f"{r['task']}/{r['metric']}" for r in rows if r.get("regression")]}
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)


def _run_task(loaded, spec: T.TaskSpec, batch_size: int, encoder) -> T.TaskResult:
    if spec.type == "perplexity":
        return T.run_perplexity(loaded, spec, batch_size)
    if spec.type == "harness":
        from tunesmith.eval import harness

        return T.TaskResult(harness.run(loaded, spec.harness_tasks, limit=spec.limit, num_fewshot=spec.num_fewshot,
                                        batch_size=batch_size, include_path=spec.include_path), [])
    rows = T.read_rows(spec)
    if spec.type in ("multiple_choice", "classification"):
        return T.run_choices(loaded, spec, rows, batch_size)
    return T.run_generative(loaded, spec, rows, batch_size, encoder=encoder)


def _judge_tasks(suite, per_task: dict, labels: list[str], judge: str | None, show: bool) -> None:
    """Judge tasks compare the first and last model's answers; with one model there is nothing to
    compare, and the task says so in its metrics instead of inventing a number."""
    judged = [s for s in suite.tasks if s.type == "judge"]
    if not judged:
        return
    if len(labels) < 2:
        for spec in judged:
            per_task[spec.name]["note"] = "judge tasks compare two models; evaluate a run to compare base and tuned"
        return
    from tunesmith.eval.judge import make_judge, pairwise

    ask = make_judge(judge or "smollm2-135m-instruct")
    for spec in judged:
        slot = per_task[spec.name]
        base, tuned = slot["records"][labels[0]], slot["records"][labels[-1]]
        t0 = time.perf_counter()
        scored = pairwise([r["prompt"] for r in base], [r["output"] for r in base], [r["output"] for r in tuned], ask)
        m = scored["metrics"]
        # The base's win rate is the mirror image: the report then shows the delta and flags a loss.
        slot["metrics"][labels[-1]] = m
        slot["metrics"][labels[0]] = {"win_rate": 1.0 - m["win_rate"]}
        slot["judge"] = {"judge": getattr(ask, "description", judge), "verdicts": scored["records"]}
        _say(show, f"judge: {spec.name} win rate {m['win_rate']:.3f} (wins {m['wins']}, ties {m['ties']}, "
             f"losses {m['losses']}) in {time.perf_counter() - t0:.1f} s")


def _results(suite, subjects, per_task: dict, seconds: dict, samples: int) -> dict:
    out_tasks = []
    for spec in suite.tasks:
        slot = per_task[spec.name]
        labels = [s.label for s in subjects]
        first = slot["records"][labels[0]]
        shown = []
        for i in range(min(samples, len(first))):
            shown.append({"prompt": first[i]["prompt"], "reference": first[i].get("reference", ""),
                          "outputs": {lab: slot["records"][lab][i]["output"] for lab in labels}})
        task = {"name": spec.name, "type": spec.type, "n": len(first) or None, "metrics": slot["metrics"],
                "samples": shown, "lengths": {k: v for k, v in slot["lengths"].items() if v}}
        task.update(slot.get("info", {}))
        if "note" in slot:
            task["note"] = slot["note"]
        if "judge" in slot:
            task["judge"] = slot["judge"]["judge"]
        out_tasks.append(task)
    suite_bytes = Path(suite.file).read_bytes()
    return {"suite": suite.name, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "models": {s.label: s.description for s in subjects}, "tasks": out_tasks, "seconds": seconds,
            "suite_file": suite.file, "suite_sha256": hashlib.sha256(suite_bytes).hexdigest(),
            "task_specs": [T.to_dict(t) for t in suite.tasks], "versions": runs.versions()}


def _write_outputs(path: Path, slot: dict) -> None:
    labels = list(slot["records"])
    rows = slot["records"][labels[0]] if labels else []
    verdicts = slot.get("judge", {}).get("verdicts", [])
    with open(path, "w", encoding="utf-8") as f:
        for i, first in enumerate(rows):
            row = {"id": i, "prompt": first["prompt"], "reference": first.get("reference", ""),
                   "outputs": {lab: slot["records"][lab][i]["output"] for lab in labels},
                   "scores": {lab: {k: v for k, v in slot["records"][lab][i].items()
                                    if k not in ("prompt", "reference", "output")} for lab in labels}}
            if i < len(verdicts):
                row["judge"] = verdicts[i]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_report(out: Path, threshold: float = REGRESSION_THRESHOLD, results: dict | None = None) -> tuple[Path, Path]:
    """(Re)render report.html and report.md from eval/results.json (or the `results` just written)
    and, for a run, its loss curve."""
    from tunesmith.eval.report import render

    audit_file = out / "audit" / "results.json"  # `tunesmith audit`'s results: the Safety section
    safety = json.loads(audit_file.read_text(encoding="utf-8")) if audit_file.is_file() else None
    if results is None and safety is not None and not (out / RESULTS).is_file():
        results = {"suite": "(none)", "models": safety["models"], "tasks": [], "created": safety["created"]}
    if results is None:
        results = _read_results(out)
    curve = runs.read_metrics(out) if (out / "metrics.jsonl").is_file() else None
    return render(results, out, threshold=threshold, loss_curve=curve, title=f"tunesmith evaluation: {out.name}",
                  safety=safety)


def compare_runs(targets: list[str | Path], out: str | Path,
                 threshold: float = REGRESSION_THRESHOLD) -> tuple[Path, Path]:
    """`tunesmith report RUN1 RUN2 ...`: each evaluated run side by side."""
    from tunesmith.eval.report import render_comparison

    loaded = []
    for t in targets:
        path = Path(t)
        if not (path / RESULTS).is_file():
            raise fail(f"{path} has no {RESULTS}", f"evaluate it first: tunesmith eval {path} --suite SUITE.yaml")
        loaded.append((path.name, json.loads((path / RESULTS).read_text(encoding="utf-8"))))
    return render_comparison(loaded, Path(out), threshold=threshold)


def _encoder_if_needed(suite):
    if any("embedding_similarity" in t.metrics for t in suite.tasks if t.type == "generation"):
        from tunesmith.eval.metrics import Encoder

        return Encoder()
    return None


def _n(result: T.TaskResult, spec: T.TaskSpec) -> str:
    return str(len(result.records)) if result.records else ("text" if spec.type == "perplexity" else "0")


def _fmt(metrics: dict) -> str:
    shown = [f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))][:4]
    return ", ".join(shown)


def _slug(target: str) -> str:
    name = Path(target).name or target
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "model"


def human_export(target: str | Path, *, task: str | None = None, out: str | Path | None = None,
                 seed: int = 0) -> dict:
    """A blind A/B sheet from an evaluated run's generative outputs (base vs tuned, sides shuffled)."""
    from tunesmith.eval.human import export_sheet

    path = Path(target)
    results = _read_results(path)
    labels = list(results["models"])
    if len(labels) < 2:
        raise fail(f"{path} evaluated one model only", "evaluate a run (base vs tuned) to compare two models")
    names = [t["name"] for t in results["tasks"] if t["type"] in T.GENERATIVE and (task is None or t["name"] == task)]
    if not names:
        raise fail(f"no generative task{' named ' + repr(task) if task else ''} in {path / RESULTS}",
                   "pick one of: " + ", ".join(t["name"] for t in results["tasks"] if t["type"] in T.GENERATIVE))
    items = []
    for name in names:
        with open(path / "eval" / "outputs" / f"{name}.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                items.append({"id": f"{name}-{row['id']}", "prompt": row["prompt"],
                              "outputs": {lab: row["outputs"][lab] for lab in (labels[0], labels[-1])}})
    return export_sheet(items, Path(out) if out else path / "human", seed=seed, labels=(labels[0], labels[-1]))


def human_import(target: str | Path, ratings: str | Path, *, key: str | Path | None = None) -> dict:
    """Read raters' A/B/tie choices; the win rate (with its 95% interval) joins results.json and the
    report as the task `human`."""
    from tunesmith.eval.human import import_ratings

    path = Path(target)
    result = import_ratings(Path(ratings), Path(key) if key else path / "human" / "ab_key.json")
    results = _read_results(path)
    labels = list(results["models"])
    tuned_rate = result["win_rate"]
    results["tasks"] = [t for t in results["tasks"] if t["name"] != "human"] + [{
        "name": "human", "type": "human", "n": result["n"], "samples": [], "lengths": {},
        "metrics": {labels[0]: {"win_rate": 1.0 - tuned_rate},
                    labels[-1]: {"win_rate": tuned_rate, "win_rate_low": result["ci95_low"],
                                 "win_rate_high": result["ci95_high"]}}}]
    runs.write_json(path / RESULTS, results)
    runs.write_json(path / "human" / "ratings_summary.json", result)
    write_report(path, results=results)
    return result


def _read_results(path: Path) -> dict:
    if not (path / RESULTS).is_file():
        raise fail(f"{path} has no {RESULTS}", f"evaluate it first: tunesmith eval {path} --suite SUITE.yaml")
    return json.loads((path / RESULTS).read_text(encoding="utf-8"))
