"""Comparing evaluation results: per (task, metric), is the model under test better than the
baseline, and is it worse by more than the regression threshold?

The numbers behind the report (report.py draws them) and behind what `tunesmith eval` prints.
Input is the results dict that the eval runner writes as `eval/results.json` (schema in report.py).
"""

from __future__ import annotations

import math

from tunesmith.config import REGRESSION_THRESHOLD
from tunesmith.errors import Collector, fail

LOWER_WORDS = ("loss", "perplexity", "ppl", "bits_per")  # names of metrics that go down as a model improves


def higher_is_better(name: str) -> bool:
    """Direction of a metric: the metrics module's table when it names it, else by its name
    (losses, perplexities and bits-per-x go down when a model gets better)."""
    try:
        from tunesmith.eval.metrics import HIGHER_IS_BETTER
    except ImportError:  # the table is optional; the name rule covers every metric we compute
        HIGHER_IS_BETTER = {}
    if name in HIGHER_IS_BETTER:
        return bool(HIGHER_IS_BETTER[name])
    return not any(word in name.lower() for word in LOWER_WORDS)


def as_number(value) -> float | None:
    """A finite number or None (a missing value, a string, a bool, NaN all read as 'no value')."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def judge_change(metric: str, base: float | None, new: float | None, threshold: float) -> dict:
    """delta, rel_delta, better, regression of `new` against `base` in the metric's direction."""
    if base is None or new is None:
        return {"delta": None, "rel_delta": None, "better": None, "regression": False}
    delta = new - base
    worse_by = -delta if higher_is_better(metric) else delta  # > 0 means the new model is worse
    allowed = threshold * abs(base) if base != 0 else threshold  # absolute threshold at a zero baseline
    # A hair of tolerance so a change of exactly the threshold (0.50 -> 0.475 at 5%) is not flagged
    # because binary floats make it 5.0000000001%.
    regression = worse_by > allowed + 1e-12 * max(1.0, abs(base))
    return {"delta": delta, "rel_delta": delta / abs(base) if base != 0 else None,
            "better": None if delta == 0 else worse_by < 0, "regression": regression}


def check_results(results: dict, where: str = "results") -> list[str]:
    """Every structural problem at once (STYLE rule 4); returns the model labels in order."""
    problems = Collector(title=f"{where} is not an evaluation results dict:")
    fix = "pass the dict that the eval runner writes as eval/results.json"
    if not isinstance(results, dict):
        raise fail(f"{where} is a {type(results).__name__}, not a dict", fix)
    models = results.get("models")
    if not isinstance(models, dict) or not models:
        problems.add(f"'models' must be a non-empty dict of label -> model, got {models!r}", fix)
        models = {}
    tasks = results.get("tasks")
    if not isinstance(tasks, list):
        problems.add(f"'tasks' must be a list of tasks, got {type(tasks).__name__}", fix)
        tasks = []
    seen = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("name"), str):
            problems.add(f"tasks[{i}] has no 'name'", fix)
            continue
        if task["name"] in seen:
            problems.add(f"task name {task['name']!r} appears twice", "give every task its own name")
        seen.add(task["name"])
        metrics = task.get("metrics", {})
        if not isinstance(metrics, dict) or not all(isinstance(m, dict) for m in metrics.values()):
            problems.add(f"task {task['name']!r}: 'metrics' must map label -> {{metric: value}}", fix)
        elif models and (unknown := [k for k in metrics if k not in models]):
            problems.add(f"task {task['name']!r} has metrics for {unknown}, which are not in 'models' "
                         f"({list(models)})", "give every label in the task's metrics a 'models' entry")
    problems.raise_if_any()
    return list(models)


def compare(results: dict, threshold: float = REGRESSION_THRESHOLD, baseline: str | None = None) -> list[dict]:
    """One row per (task, metric): values per label, and the last label against the baseline
    (the first label unless named): delta, rel_delta, better, regression (worse by more than
    `threshold` relative to |baseline|, absolute when the baseline is 0)."""
    labels = check_results(results)
    if baseline is None:
        baseline = labels[0]
    elif baseline not in labels:
        raise fail(f"baseline {baseline!r} is not one of the evaluated models {labels}",
                   f"use one of {labels}, or leave it out to compare against {labels[0]!r}")
    if not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise fail(f"the regression threshold must be a number >= 0, got {threshold!r}",
                   "e.g. 0.05 flags a metric 5% worse than the baseline")
    last, rows = labels[-1], []
    for task in results["tasks"]:
        metrics = task.get("metrics", {})
        names = list(dict.fromkeys(m for label in labels for m in metrics.get(label, {})))
        for name in names:
            values = {label: as_number(metrics.get(label, {}).get(name)) for label in labels}
            if all(v is None for v in values.values()):
                continue  # not a number for anyone (a confusion matrix, a note): nothing to compare
            judged = judge_change(name, values[baseline], values[last] if len(labels) > 1 else None, threshold)
            rows.append({"task": task["name"], "metric": name, "values": values, **judged})
    return rows
