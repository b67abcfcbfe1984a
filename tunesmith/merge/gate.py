"""The eval gate: a merge is kept only if it stays within each parent's tolerance on that parent's suite.

Each suite named by a parent is run (tunesmith's own evaluation, tunesmith/eval/run.py) on the
parent that owns it, on the merge, and (gate.cross) on the other parents, so the report shows every
parent and the merge side by side. The gated metrics are the parent's `metrics`, else each task's
primary metric; a check passes when the merge is worse than the parent by at most `tolerance`
(absolute, in the metric's own direction).

<run>/gate/
  <suite>/<label>/       one evaluation each (eval/results.json, its outputs and report)
  <suite>/report.html    that suite: owner parent, other parents and the merge side by side
  results.json           every check with its numbers
  report.html, .md       the merge report (also copied to the run directory)
"""

from __future__ import annotations

import html
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import Collector, fail
from tunesmith.eval.compare import as_number, higher_is_better
from tunesmith.merge.config import MergeConfig, yaml_lines
from tunesmith.merge.parents import MERGED_LABEL, Parent

MERGED = MERGED_LABEL  # the merge's column in every table (parents.inspect keeps parents off it)


@dataclass
class Model:
    """Something the gate evaluates: a parent or the merge."""

    label: str
    target: Path  # a run directory or a model folder


def suites(cfg: MergeConfig) -> dict[str, object]:
    """{suite file: loaded Suite} of every gated parent, loaded now so that a broken suite or a gated
    task it does not have stops the merge before any model loads."""
    from tunesmith.eval.tasks import load_suite

    lines = yaml_lines(cfg)
    errors = Collector(title=f"{cfg.config_path or 'merge config'}: the gate's suites have problems:")
    loaded: dict[str, object] = {}
    for i, p in enumerate(cfg.parents):
        if not p.eval_suite:
            continue
        if p.eval_suite not in loaded:
            try:
                loaded[p.eval_suite] = load_suite(p.eval_suite, cfg.gate.limit)
            except Exception as e:  # noqa: BLE001 - a TunesmithError; reported with the parent's key
                errors.add(str(e), "fix the suite, or point eval_suite at another", file=cfg.config_path,
                           line=lines.get(f"parents[{i}].eval_suite"), field=f"parents[{i}].eval_suite")
                continue
        names = [t.name for t in loaded[p.eval_suite].tasks]
        for m in p.metrics:
            if m.split("/")[0] not in names:
                errors.add(f"task {m.split('/')[0]!r} is not in suite {p.eval_suite}", f"use one of {names}",
                           file=cfg.config_path, line=lines.get(f"parents[{i}].metrics"), field=f"parents[{i}].metrics")
    errors.raise_if_any()
    return loaded


def run_gate(cfg: MergeConfig, parents: list[Parent], merged_dir: Path, loaded: dict,
             show_progress: bool = True) -> dict:
    """Evaluate, check every gated parent, write gate/ and the reports; returns the gate's results
    ({passed, checks, suites, failures})."""
    from tunesmith.eval.run import evaluate

    gate_dir = merged_dir / "gate"
    shutil.rmtree(gate_dir, ignore_errors=True)
    merged = Model(MERGED, merged_dir)
    by_suite: dict[str, dict] = {}
    folders: dict[str, str] = {}  # suite file -> its folder under gate/ (two suites may share a name)
    for suite_file, suite in loaded.items():
        slug = _slug(suite.name)
        folders[suite_file] = slug if slug not in folders.values() else f"{slug}-{len(folders) + 1}"
        owners = [p for p in parents if cfg.parents[p.index].eval_suite == suite_file]
        others = [p for p in parents if p not in owners] if cfg.gate.cross else []
        models = [Model(p.label, p.path) for p in owners + others] + [merged]
        folder = gate_dir / folders[suite_file]
        evaluated = {}
        for m in models:
            _say(show_progress, f"gate: {m.label} on {suite.name}")
            out = evaluate(m.target, suite_file, out=folder / m.label, limit=cfg.gate.limit, compare_base=False,
                           samples=cfg.gate.samples, dtype=cfg.gate.dtype, show_progress=show_progress,
                           energy={"enabled": False})
            evaluated[m.label] = json.loads((out / "eval" / "results.json").read_text(encoding="utf-8"))
        by_suite[suite_file] = _side_by_side(suite.name, evaluated)
        _render_suite(by_suite[suite_file], folder)
    checks = []
    for p in parents:
        suite_file = cfg.parents[p.index].eval_suite
        if suite_file:
            found = _checks(cfg, p, by_suite[suite_file], suite_file)
            if not found:  # a gate that checks nothing must not pass
                raise fail(f"parent {p.label}'s eval suite {suite_file} reported no numeric metric to gate on",
                           "give the suite a task with a scored metric (e.g. exact_match, json_match), or name "
                           "them in parents[].metrics", field=f"parents[{p.index}].eval_suite")
            checks += found
    failures = [c for c in checks if not c["passed"]]
    result = {"passed": not failures, "checks": checks, "failures": [describe_failure(c) for c in failures],
              "suites": {f: {"name": r["suite"], "report": f"gate/{folders[f]}/report.html"}
                         for f, r in by_suite.items()}}
    runs.write_json(gate_dir / "results.json", {**result, "results": by_suite})
    return {**result, "results": by_suite}


def _side_by_side(name: str, evaluated: dict[str, dict]) -> dict:
    """One results dict (tunesmith/eval/report.py's schema) with every evaluated model as a label,
    in order: owner parent first (the report's baseline), the merge last."""
    labels = list(evaluated)
    first = evaluated[labels[0]]
    tasks = []
    for i, task in enumerate(first["tasks"]):
        merged_task = {k: v for k, v in task.items() if k not in ("metrics", "samples", "lengths")}
        merged_task["metrics"], merged_task["lengths"], samples = {}, {}, []
        for label in labels:
            t = evaluated[label]["tasks"][i]
            only = list(evaluated[label]["models"])[0]  # "tuned" for a run, "model" for a folder
            merged_task["metrics"][label] = t["metrics"].get(only, {})
            merged_task["lengths"][label] = (t.get("lengths") or {}).get(only, [])
            for k, s in enumerate(t.get("samples") or []):
                if k == len(samples):
                    samples.append({"prompt": s["prompt"], "reference": s.get("reference", ""), "outputs": {}})
                samples[k]["outputs"][label] = s["outputs"].get(only, "")
        merged_task["samples"] = samples
        tasks.append(merged_task)
    return {"suite": name, "created": first["created"], "tasks": tasks, "task_specs": first.get("task_specs", []),
            "models": {lb: list(evaluated[lb]["models"].values())[0] for lb in labels},
            "seconds": {lb: sum((evaluated[lb].get("seconds") or {}).values()) for lb in labels}}


def _render_suite(results: dict, folder: Path) -> None:
    from tunesmith.eval.report import render

    render(results, folder, title=f"tunesmith merge gate: {results['suite']} (parents and merge side by side)")


def primary_metrics(task: dict, spec: dict, label: str) -> list[str]:
    """A task's primary metric: its first listed generation metric that it reported (json_match's
    first key is json_valid, so the name comes from the task, not from dict order), else the first
    numeric metric it reported (acc, accuracy, eval_loss, ...)."""
    reported = [k for k, v in (task["metrics"].get(label) or {}).items() if as_number(v) is not None]
    named = [m for m in spec.get("metrics") or [] if m in reported]
    return named[:1] or reported[:1]


def _checks(cfg: MergeConfig, parent: Parent, results: dict, suite_file: str) -> list[dict]:
    pc = cfg.parents[parent.index]
    specs = {s["name"]: s for s in results.get("task_specs") or []}
    tasks = {t["name"]: t for t in results["tasks"]}
    wanted = [tuple(m.split("/")) for m in pc.metrics] or [
        (name, metric) for name, t in tasks.items() for metric in primary_metrics(t, specs.get(name, {}), parent.label)]
    out = []
    for task_name, metric in wanted:
        values = tasks[task_name]["metrics"]
        ours, merged = as_number(values[parent.label].get(metric)), as_number(values[MERGED].get(metric))
        if ours is None:
            raise fail(f"suite {results['suite']}: task {task_name} reports no metric {metric!r}",
                       f"gate on one it reports: {', '.join(f'{task_name}/{k}' for k in values[parent.label])}",
                       file=cfg.config_path, field=f"parents[{parent.index}].metrics")
        drop = None if merged is None else (ours - merged if higher_is_better(metric) else merged - ours)
        out.append({"parent": parent.label, "suite": results["suite"], "suite_file": suite_file, "task": task_name,
                    "metric": metric,
                    "parent_value": ours, "merged_value": merged, "drop": drop, "tolerance": pc.tolerance,
                    # a hair of slack so a drop of exactly the tolerance is not lost to float rounding
                    "passed": drop is not None and drop <= pc.tolerance + 1e-12})
    return out


def describe_failure(c: dict) -> str:
    merged = "no value" if c["merged_value"] is None else f"{c['merged_value']:.4f}"
    return (f"parent {c['parent']}, suite {c['suite']}, {c['task']}/{c['metric']}: parent {c['parent_value']:.4f}, "
            f"merged {merged}, a drop of {c['drop'] if c['drop'] is None else round(c['drop'], 4)} > tolerance "
            f"{c['tolerance']}")


# --------------------------------------------------------------------------- the merge report


def write_report(run_dir: Path, summary: list[tuple[str, str]], gate: dict | None, labels: list[str],
                 verdict: str) -> tuple[Path, Path]:
    """report.md and report.html of the merge: the facts, the verdict, each gated metric with every
    parent's and the merge's value, and links to each suite's side-by-side report."""
    from tunesmith.eval.report import CSS_FILE

    md = [f"# tunesmith merge: {run_dir.name}", ""] + [f"- **{k}:** {v}" for k, v in summary]
    md += ["", f"**{verdict}**", ""]
    body = [f"<h1>tunesmith merge: {html.escape(run_dir.name)}</h1>", '<dl class="meta">'
            + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in summary) + "</dl>",
            f'<div class="summary{"" if gate is None or gate["passed"] else " bad"}"><strong>{html.escape(verdict)}'
            "</strong></div>"]
    if gate:
        rows = _gate_rows(gate, labels)
        head = ["suite", "task / metric", *labels, "gated parent", "drop", "tolerance", "result"]
        md += ["## Gate", "", "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(labels) + 3) + "---|"]
        md += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        body += ["<h2>Gate</h2>", "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
        body += [f'<tr class="{"regression" if r[-1] != "pass" else ""}">'
                 + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
        body.append("</table>")
        links = [(s["name"], s["report"]) for s in gate["suites"].values()]
        md += ["## Suites, side by side", ""] + [f"- [{n}]({p}) (samples and every metric)" for n, p in links] + [""]
        body += ["<h2>Suites, side by side</h2><ul>"] + [f'<li><a href="{html.escape(p)}">{html.escape(n)}</a></li>'
                                                         for n, p in links] + ["</ul>"]
    css = CSS_FILE.read_text(encoding="utf-8")
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>tunesmith merge: '
            f"{html.escape(run_dir.name)}</title><style>\n{css}</style></head>\n<body><main>\n" + "\n".join(body)
            + "\n</main></body></html>\n")
    text = "\n".join(md).rstrip() + "\n"
    if gate:  # a copy inside gate/ (links one level up) that a later `tunesmith eval RUN` leaves alone
        (run_dir / "gate").mkdir(parents=True, exist_ok=True)
        (run_dir / "gate" / "report.md").write_text(text.replace("](gate/", "]("), encoding="utf-8")
        (run_dir / "gate" / "report.html").write_text(page.replace('href="gate/', 'href="'), encoding="utf-8")
    (run_dir / "report.md").write_text(text, encoding="utf-8")
    (run_dir / "report.html").write_text(page, encoding="utf-8")
    return run_dir / "report.html", run_dir / "report.md"


def _gate_rows(gate: dict, labels: list[str]) -> list[list[str]]:
    rows = []
    for c in gate["checks"]:
        metrics = next(t for t in gate["results"][c["suite_file"]]["tasks"] if t["name"] == c["task"])["metrics"]
        cells = [_num((metrics.get(lb) or {}).get(c["metric"])) for lb in labels]
        rows.append([c["suite"], f"{c['task']} / {c['metric']}", *cells, c["parent"], _num(c["drop"]),
                     f"{c['tolerance']:g}", "pass" if c["passed"] else "FAIL"])
    return rows


def _num(v) -> str:
    return "–" if as_number(v) is None else f"{v:.4f}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "suite"


def _say(show: bool, text: str) -> None:
    if show:
        print(f"tunesmith merge: {text}", file=sys.stderr, flush=True)
