"""Before/after evaluation reports: `report.html` (one self-contained file) and `report.md`.

Input is the results dict that the eval runner writes as `eval/results.json`: model labels in
order (the first is the baseline, the last the model under test), and per task its metrics per
label, a few sample outputs and the generated lengths. Which metric improved and which regressed
is compare.py's answer (`compare` is imported from there and stays importable from here).

out_dir/
  report.html              CSS inline (static/report.css), plots as base64 PNG <img>, no external URL,
                           no JavaScript
  report.md                the same tables and samples for GitHub; its plots are the PNGs below
  report_plots/            rewritten on every render (the md links them relatively)
    metrics.png            base vs tuned bars, one panel per task (fractions on 0..1, BLEU/chrF on 0..100)
    loss.png               train and eval loss vs step (when a loss curve is given)
    lengths_<task>.png     output-length histograms per generating task

Plots are matplotlib's (Agg backend, imported only when a report is drawn, STYLE rule 13).
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from tunesmith.config import REGRESSION_THRESHOLD
from tunesmith.errors import fail
from tunesmith.eval.compare import as_number, check_results, compare, higher_is_better, judge_change

PLOTS = "report_plots"
CLIP = 1500  # sample text longer than this is cut, with a visible "…", so one sample can't drown the page
# Fixed colours per label position: the baseline grey, the tuned model blue, more runs after them.
COLORS = ("#8c8c8c", "#1f6fb4", "#e08a1e", "#2a9d5c", "#8e5fb5", "#c4455a", "#3fa7b5", "#b59a3f")

# Inlined into report.html at render time: the page must stay one self-contained file.
CSS_FILE = Path(__file__).parent / "static" / "report.css"


# --------------------------------------------------------------------------- text helpers


def _fmt(v: float | None) -> str:
    """A metric value, with enough digits for its size (acc 0.3412, BLEU 23.456, ppl 1234.5)."""
    if v is None:
        return "–"
    if v == 0:
        return "0"
    spec = next((spec for bound, spec in ((1000, ".1f"), (100, ".2f"), (1, ".3f"), (0.001, ".4f"))
                 if abs(v) >= bound), ".3g")
    return format(v, spec)


def _fmt_delta(row: dict) -> str:
    if row["delta"] is None:
        return "–"
    text = ("+" if row["delta"] >= 0 else "-") + _fmt(abs(row["delta"]))
    return text + (f" ({row['rel_delta']:+.1%})" if row["rel_delta"] is not None else "")


def _arrow(metric: str) -> str:
    return "↑" if higher_is_better(metric) else "↓"


def _clip(text, limit: int = CLIP) -> str:
    """Sample text cut at `limit` characters with a visible ellipsis and how much was left out."""
    text = "(none)" if text is None else str(text)
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f" … [{len(text) - limit} more characters]"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "task"


def _md_cell(text: str) -> str:
    """Markdown outside code: a pipe would end a table cell, a newline the row, and GitHub would take
    <word> for an HTML tag and hide it."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in the text, so the text can't close it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * max(3, longest + 1)
    return f"{tick}text\n{text}\n{tick}"


def _summary(rows: list[dict], threshold: float) -> tuple[str, list[dict]]:
    """'N metrics improved, M regressed' (+ the small moves) and the regressed rows."""
    bad = [r for r in rows if r["regression"]]
    up = sum(r["better"] is True for r in rows)
    slight = sum(r["better"] is False and not r["regression"] for r in rows)
    same = sum(r["delta"] == 0 for r in rows)
    text = f"{up} metric{'s' * (up != 1)} improved, {len(bad)} regressed"
    if slight:
        text += f", {slight} worse within the {_pct(threshold)} threshold"
    if same:
        text += f", {same} unchanged"
    return text, bad


def _regression_line(where: str, base: float, new: float, judged: dict) -> str:
    """'⚠ REGRESSION task / metric: 0.3400 → 0.3000 (-11.8%)', the change absolute at a zero baseline."""
    change = f"{judged['rel_delta']:+.1%}" if judged["rel_delta"] is not None else f"{judged['delta']:+g}"
    return f"⚠ REGRESSION {where}: {_fmt(base)} → {_fmt(new)} ({change})"


def _pct(threshold: float) -> str:
    return f"{threshold * 100:g}%"  # 5%, 2.5%: as the user wrote it


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _loss_plot(loss_curve: list[dict]) -> bytes | None:
    """Train loss and eval loss against step; None when the rows hold no loss at all."""
    series = {}
    for key, name in (("loss", "train loss"), ("eval_loss", "eval loss")):
        points = [(as_number(r.get("step")), as_number(r.get(key))) for r in loss_curve if isinstance(r, dict)]
        points = [p for p in points if None not in p]
        if points:
            series[name] = points
    if not series:
        return None
    fig, ax = _pyplot().subplots(figsize=(9.5, 3.4))
    for (name, points), color, style in zip(series.items(), ("#1f6fb4", "#e08a1e"), ("-", "o-")):
        ax.plot(*zip(*points), style, color=color, label=name, lw=1.6, ms=4)
    ax.set(xlabel="step", ylabel="loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _png(fig)


def _full_scale(metric: str, values: list[float]) -> float:
    """Full bar height: 1 for fractions (accuracy, ROUGE, ...), 100 for BLEU/chrF, else the larger
    |value| (perplexity, counts), so a lone model's 0.26 accuracy does not fill its panel."""
    top = max((abs(v) for v in values), default=0.0)
    if top <= 1.0:
        return 1.0
    if top <= 100.0 and metric in ("bleu", "chrf"):
        return 100.0
    return top or 1.0


def _bar_panel(ax, panel: tuple[str, list[str], dict, list[set]], labels: list[str], width: float) -> None:
    """One task's bars, scaled per metric (_full_scale), real values written on them."""
    task, metrics, values, flagged = panel
    bar_w = 0.8 / len(labels)
    rotate = len(labels) > 2 or len(metrics) > 4  # narrow bars: vertical value labels
    lo, hi = 0.0, 1.0
    for m_i in range(len(metrics)):
        real = [values[label][m_i] for label in labels]
        scale = _full_scale(metrics[m_i], [v for v in real if v is not None])
        for l_i, v in enumerate(real):
            x = m_i - 0.4 + bar_w * (l_i + 0.5)
            h = 0.0 if v is None else v / scale
            lo, hi = min(lo, h), max(hi, h)
            bad = labels[l_i] in flagged[m_i]
            ax.bar(x, h, bar_w * 0.92, color=COLORS[l_i % len(COLORS)],
                   edgecolor="#d62728" if bad else "none", linewidth=2.2 if bad else 0)
            ax.text(x, max(h, 0) + 0.03, "n/a" if v is None else _fmt(v), ha="center", va="bottom",
                    fontsize=7.5, rotation=90 if rotate else 0)
    # Slant the metric names when the longest would not fit its slot (~0.085 inch a character at 10 pt).
    slant = (max(map(len, metrics)) + 2) * 0.085 > width / len(metrics)
    ax.set_xticks(range(len(metrics)), [f"{m} {_arrow(m)}" for m in metrics],
                  rotation=25 if slant else 0, ha="right" if slant else "center")
    ax.set(xlim=(-0.55, len(metrics) - 0.45), ylim=(lo * 1.15, hi * (1.55 if rotate else 1.25)), yticks=[])
    ax.axhline(0, color="#444", lw=0.6)
    ax.set_title(task, fontsize=11)
    ax.spines[["top", "right", "left"]].set_visible(False)


def _bars_plot(panels: list[tuple[str, list[str], dict, list[set]]], labels: list[str]) -> bytes | None:
    """One small panel per task: (task, metrics, {label: value per metric}, {flagged labels} per
    metric). Bars are scaled per metric so BLEU 0..100, accuracy 0..1 and perplexity in the
    thousands can share a panel; a regressed bar gets a red outline."""
    from matplotlib.patches import Patch

    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    # Each panel as wide as its bars need; panels fill rows of at most 11 inches (1100 px at dpi
    # 100, the page's width) so the browser never shrinks a figure and its text with it.
    most = 11.0
    widths = [min(most, max(2.6, 1.0 + 0.42 * len(p[1]) * len(labels))) for p in panels]
    rows: list[list[int]] = [[]]
    for i, w in enumerate(widths):
        if rows[-1] and sum(widths[j] for j in rows[-1]) + w > most:
            rows.append([])
        rows[-1].append(i)
    fig_w = max(sum(widths[j] for j in row) for row in rows)
    fig = _pyplot().figure(figsize=(fig_w, 3.5 * len(rows)), layout="constrained")
    for sub, row in zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows):
        ratios = [widths[j] for j in row]
        spare = fig_w - sum(ratios)  # an empty slot keeps a short row's panels at their own width
        axes = sub.subplots(1, len(row) + (spare > 0.2), squeeze=False,
                            width_ratios=ratios + ([spare] if spare > 0.2 else []))[0]
        for ax, j in zip(axes, row):
            _bar_panel(ax, panels[j], labels, widths[j])
        if spare > 0.2:
            axes[-1].axis("off")
    handles = [Patch(color=COLORS[i % len(COLORS)], label=lb) for i, lb in enumerate(labels)]
    if any(f for p in panels for f in p[3]):
        handles.append(Patch(facecolor="white", edgecolor="#d62728", linewidth=2.2, label="regression"))
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 5), frameon=False)
    return _png(fig)


def _lengths_plot(lengths: dict, labels: list[str]) -> bytes | None:
    """Generated-length histograms of every label overlaid on shared bins."""
    import numpy as np

    data = {lb: [v for v in (as_number(x) for x in lengths.get(lb) or []) if v is not None] for lb in labels}
    data = {lb: v for lb, v in data.items() if v}
    if not data:
        return None
    every = np.concatenate([np.asarray(v) for v in data.values()])
    if every.min() == every.max():
        edges = np.array([every.min() - 0.5, every.max() + 0.5])
    else:
        edges = np.histogram_bin_edges(every, bins="auto")
        if len(edges) > 31:  # "auto" can give hundreds of bins for long outputs; 30 stay readable
            edges = np.linspace(every.min(), every.max(), 31)
    fig, ax = _pyplot().subplots(figsize=(9.5, 3.0))
    for lb, vals in data.items():
        ax.hist(vals, bins=edges, alpha=0.55, color=COLORS[labels.index(lb) % len(COLORS)],
                label=f"{lb} (n={len(vals)}, median {float(np.median(vals)):g})")
    ax.set(xlabel="generated tokens", ylabel="outputs")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(frameon=False, fontsize=9)
    return _png(fig)


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _plots_dir(out_dir: Path) -> None:
    """Make report_plots/, emptied of an earlier render's PNGs (a task since removed must not linger)."""
    (out_dir / PLOTS).mkdir(parents=True, exist_ok=True)
    for old in (out_dir / PLOTS).glob("*.png"):
        old.unlink()


def _write_png(out_dir: Path, name: str, png: bytes | None, md: list[str], alt: str) -> None:
    """The md's copy of a plot: a PNG under report_plots/, linked relatively (works on GitHub)."""
    if png is not None:
        (out_dir / PLOTS / name).write_bytes(png)
        md += [f"![{alt}]({PLOTS}/{name})", ""]


# --------------------------------------------------------------------------- page pieces


def _header(title: str, meta: list[tuple[str, str]], summary: str, lines: list[str]) -> tuple[list[str], list[str]]:
    """The top of both files: title, facts, the summary and every regression named (in red)."""
    items = "".join(f"<li>{html.escape(t)}</li>" for t in lines)
    body = [f"<h1>{html.escape(title)}</h1>", '<dl class="meta">'
            + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in meta) + "</dl>",
            f'<div class="summary{" bad" if lines else ""}"><strong>{html.escape(summary)}</strong>'
            + (f'<ul class="regressions">{items}</ul>' if lines else "") + "</div>"]
    md = [f"# {title}", ""] + [f"- **{_md_cell(k)}:** {_md_cell(v)}" for k, v in meta] + [""]
    return body, md + [f"**{summary}**", ""] + [f"> **{_md_cell(t)}**  " for t in lines] + [""]


def _write_reports(out_dir: Path, title: str, body: list[str], md: list[str]) -> tuple[Path, Path]:
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    css = CSS_FILE.read_text(encoding="utf-8")
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>\n{css}</style></head>\n<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    return html_path, md_path


def _meta(results: dict, labels: list[str], threshold: float) -> list[tuple[str, str]]:
    """(name, text) pairs for the header: models, suite, date, threshold, time taken, energy."""
    models = results["models"]
    pairs = [("Models", "; ".join(f"{lb} = {models[lb]}" for lb in labels)),
             ("Suite", str(results.get("suite", "–"))), ("Date", str(results.get("created", "–"))),
             ("Regression threshold", f"{_pct(threshold)} worse than the baseline ({labels[0]}), "
                                      "absolute when the baseline is 0")]
    seconds = results.get("seconds") or {}
    if isinstance(seconds, dict) and seconds:
        pairs.append(("Time", ", ".join(f"{lb} {s:.1f} s" for lb, s in seconds.items() if as_number(s) is not None)))
    energy = results.get("energy") or {}
    if isinstance(energy, dict) and energy:  # kWh and CO2eq per stage, measured by codecarbon (tunesmith/energy.py)
        from tunesmith.energy import summary

        pairs.append(("Energy", "; ".join(f"{stage}: {summary(r)}" for stage, r in energy.items()
                                         if isinstance(r, dict))))
    return pairs


def _task_table_html(rows: list[dict], labels: list[str]) -> str:
    two = len(labels) > 1
    head = "".join(f"<th>{html.escape(lb)}</th>" for lb in labels)
    out = ["<table><tr><th>metric</th>" + head + ('<th>delta</th><th class="l">flag</th>' if two else "") + "</tr>"]
    for r in rows:
        cells = "".join(f"<td>{_fmt(r['values'][lb])}</td>" for lb in labels)
        if two:
            tone = {True: "better", False: "worse"}.get(r["better"], "")
            flag = "⚠ REGRESSION" if r["regression"] else ""
            cells += f'<td class="{tone}">{_fmt_delta(r)}</td><td class="flag">{flag}</td>'
        metric = f"{html.escape(r['metric'])} <span class=\"muted\" title=\"" + \
            ("higher is better" if higher_is_better(r["metric"]) else "lower is better") + \
            f"\">{_arrow(r['metric'])}</span>"
        out.append(f'<tr class="{"regression" if r["regression"] else ""}"><td>{metric}</td>{cells}</tr>')
    return "\n".join(out + ["</table>"])


def _task_table_md(rows: list[dict], labels: list[str]) -> list[str]:
    two = len(labels) > 1
    head = ["metric", *labels] + (["delta", "flag"] if two else [])
    out = ["| " + " | ".join(_md_cell(h) for h in head) + " |",
           "|---|" + "---:|" * (len(head) - 1 - two) + ("---|" if two else "")]
    for r in rows:
        cells = [f"{r['metric']} {_arrow(r['metric'])}", *(_fmt(r["values"][lb]) for lb in labels)]
        if two:
            cells += [_fmt_delta(r), "⚠ REGRESSION" if r["regression"] else ""]
        out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return out + [""]


def _samples(task: dict, labels: list[str]) -> tuple[str, list[str]]:
    """Prompt over reference and every model's output side by side (html), in sequence (md)."""
    samples = [s for s in task.get("samples") or [] if isinstance(s, dict)]
    if not samples:
        return "", []
    h, md = [f"<h4>Samples ({len(samples)})</h4>"], [f"**Samples ({len(samples)})**", ""]
    cols = f"grid-template-columns:repeat({len(labels) + 1},minmax(0,1fr))"
    for i, s in enumerate(samples, 1):
        outputs = s.get("outputs") if isinstance(s.get("outputs"), dict) else {}
        parts = [("Reference", s.get("reference"))] + [(lb, outputs.get(lb)) for lb in labels]
        h.append(f'<div class="sample"><h4>Prompt</h4><pre>{html.escape(_clip(s.get("prompt")))}</pre>'
                 f'<div class="cols" style="{cols}">'
                 + "".join(f"<div><h4>{html.escape(n)}</h4><pre>{html.escape(_clip(t))}</pre></div>"
                           for n, t in parts) + "</div></div>")
        md.append(f"Sample {i}, prompt:")
        md += ["", _fence(_clip(s.get("prompt"))), ""]
        for n, t in parts:
            md += [f"{n}:", "", _fence(_clip(t)), ""]
    return "\n".join(h), md


# --------------------------------------------------------------------------- the reports


def render(results: dict, out_dir: Path, *, threshold: float = REGRESSION_THRESHOLD,
           loss_curve: list[dict] | None = None, title: str | None = None,
           safety: dict | None = None) -> tuple[Path, Path]:
    """Write out_dir/report.html (self-contained) and out_dir/report.md (+ its PNGs); return both.
    `safety`: an audit's results (audit/results.json), shown as the Safety section."""
    rows = compare(results, threshold)
    labels = list(results["models"])
    out_dir = Path(out_dir)
    _plots_dir(out_dir)
    title = title or f"Evaluation report: {results.get('suite', 'evaluation')}"
    if len(labels) > 1:
        text, bad = _summary(rows, threshold)
        lines = [_regression_line(f"{r['task']} / {r['metric']}", r["values"][labels[0]], r["values"][labels[-1]], r)
                 for r in bad]
    else:
        text, lines = f"One model evaluated ({labels[0]}): no comparison.", []
    if not results["tasks"]:
        text = "No evaluation suite was run (tunesmith eval RUN --suite SUITE.yaml adds one)."
    if safety is not None:  # the audit's verdict and regressions join the header's
        from tunesmith.audit.report import summary

        safety_text, safety_lines = summary(safety)
        text, lines = f"{text} {safety_text}.", lines + safety_lines
    body, md = _header(title, _meta(results, labels, threshold), text, lines)
    if safety is not None:
        from tunesmith.audit.report import section

        safety_body, safety_md = section(safety)
        body += safety_body
        md += safety_md
    if not results["tasks"]:
        return _write_reports(out_dir, title, body, md)

    body.append("<h2>Overview</h2>")
    md += ["## Overview", ""]
    by_task = {t["name"]: [r for r in rows if r["task"] == t["name"]] for t in results["tasks"]}
    panels = [(name, [r["metric"] for r in rs], {lb: [r["values"][lb] for r in rs] for lb in labels},
               [{labels[-1]} if r["regression"] else set() for r in rs]) for name, rs in by_task.items()]
    bars = _bars_plot(panels, labels)
    if bars is not None:
        body.append(_img(bars, "metrics per task", "Metrics per task. Bar heights: fractions on 0..1, "
                         "BLEU/chrF on 0..100, others (perplexity) against the larger value; "
                         "real values on the bars; red outline: regression. ↑ higher is better, ↓ lower is better."))
    _write_png(out_dir, "metrics.png", bars, md, "metrics per task")
    loss = _loss_plot(loss_curve) if loss_curve else None
    if loss is not None:
        body.append(_img(loss, "training loss curve", "Training loss (and eval loss) against step."))
    elif loss_curve is not None:
        body.append('<p class="muted">The loss curve holds no step with a loss or eval_loss.</p>')
    _write_png(out_dir, "loss.png", loss, md, "training loss curve")

    body.append("<h2>Tasks</h2>")
    md += ["## Tasks", ""]
    for i, task in enumerate(results["tasks"]):
        name, task_rows = task["name"], by_task[task["name"]]
        sub = " · ".join(str(x) for x in (task.get("type"), task.get("n") and f"n={task['n']}") if x)
        body.append(f'<h3>{html.escape(name)} <span class="muted">{html.escape(sub)}</span></h3>')
        md += [f"### {_md_cell(name)}" + (f" ({sub})" if sub else ""), ""]
        if isinstance(task.get("note"), str):  # the runner's word on a task (skipped metric, judge used)
            body.append(f'<p class="muted">{html.escape(task["note"])}</p>')
            md += [f"_{_md_cell(task['note'])}_", ""]
        if task_rows:
            body.append(_task_table_html(task_rows, labels))
            md += _task_table_md(task_rows, labels)
        lengths = _lengths_plot(task.get("lengths") or {}, labels)
        if lengths is not None:
            body.append(_img(lengths, f"output lengths, {name}", "Generated length per output (tokens)."))
        png = f"lengths_{_slug(name)}.png"  # "a b" and "a_b" share a slug: the second gets its index
        png = png if not (out_dir / PLOTS / png).exists() else f"lengths_{_slug(name)}_{i}.png"
        _write_png(out_dir, png, lengths, md, f"output lengths, {name}")
        sample_html, sample_md = _samples(task, labels)
        body.append(sample_html)
        md += sample_md
    return _write_reports(out_dir, title, body, md)


def _comparison_table(runs: list[tuple[str, dict]]) -> tuple[list[str], list[str], dict]:
    """(run names, column names, {(task, metric): value per column}). Column 0 is the reference:
    the first run's baseline label; then each run's last label (its tuned model)."""
    if not runs:
        raise fail("no runs to compare", "name at least one run directory with eval results")
    names, sources = [], []
    for i, (name, results) in enumerate(runs):
        labels = check_results(results, where=f"run {name!r}")
        names.append(name if name not in names else f"{name} #{i + 1}")  # columns need unique names
        sources.append((results, labels[-1]))
        if i == 0:
            ref = (results, labels[0])
    columns = [f"{ref[1]} (reference)"] + names
    table: dict[tuple[str, str], list[float | None]] = {}
    for col, (results, label) in enumerate([ref] + sources):
        for task in results["tasks"]:
            for metric, value in ((task.get("metrics") or {}).get(label) or {}).items():
                if as_number(value) is not None:  # non-numbers have no place in a numeric table
                    table.setdefault((task["name"], metric), [None] * len(columns))[col] = as_number(value)
    return names, columns, table


def render_comparison(runs: list[tuple[str, dict]], out_dir: Path,
                      threshold: float = REGRESSION_THRESHOLD) -> tuple[Path, Path]:
    """`tunesmith report RUN1 RUN2 ...`: every (task, metric) across runs, each run's last label,
    with the first run's baseline label as the reference column; best value per row in bold,
    regressions against the reference flagged. Writes report.html and report.md; returns both."""
    names, columns, table = _comparison_table(runs)
    first, ref_label = runs[0][1], columns[0].removesuffix(" (reference)")
    title = "Run comparison: " + ", ".join(names)
    meta = []
    for name, (_, results) in zip(names, runs):
        label = list(results["models"])[-1]
        meta.append((name, f"{label} = {results['models'][label]} · suite {results.get('suite', '–')}"
                           f" · {results.get('created', '–')}"))
    meta += [("Reference", f"{ref_label} = {first['models'][ref_label]} (from {names[0]})"),
             ("Regression threshold", f"{_pct(threshold)} worse than the reference, absolute when it is 0")]

    t_html = ['<table><tr><th class="l">task</th><th class="l">metric</th>'
              + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + '<th class="l">flag</th></tr>']
    t_md = ["| task | metric | " + " | ".join(_md_cell(c) for c in columns) + " | flag |",
            "|---|---|" + "---:|" * len(columns) + "---|"]
    lines, flags, regressed = [], {}, set()
    for (task, metric), vals in table.items():
        best = (max if higher_is_better(metric) else min)(v for v in vals if v is not None)
        bad = []
        for name, v in zip(names, vals[1:]):
            judged = judge_change(metric, vals[0], v, threshold)
            if judged["regression"]:
                bad.append(name)
                lines.append(_regression_line(f"{name}: {task} / {metric}", vals[0], v, judged))
        flags[(task, metric)] = set(bad)
        regressed.update(bad)
        flag = ("⚠ REGRESSION: " + ", ".join(bad)) if bad else ""
        t_html.append(f'<tr class="{"regression" if bad else ""}"><td class="l">{html.escape(task)}</td>'
                      f'<td class="l">{html.escape(metric)} {_arrow(metric)}</td>'
                      + "".join(f"<td>{('<b>{}</b>' if v == best else '{}').format(_fmt(v))}</td>" for v in vals)
                      + f'<td class="flag">{html.escape(flag)}</td></tr>')
        cells = [("**{}**" if v == best else "{}").format(_fmt(v)) for v in vals]
        t_md.append("| " + " | ".join(_md_cell(c) for c in [task, f"{metric} {_arrow(metric)}", *cells, flag]) + " |")
    summary = (f"{len(lines)} regression{'s' * (len(lines) != 1)} against the reference in {len(regressed)} "
               f"run{'s' * (len(regressed) != 1)}" if lines else "No run regressed against the reference")

    out_dir = Path(out_dir)
    _plots_dir(out_dir)
    body, md = _header(title, meta, summary, lines)
    body += ["<h2>Metrics</h2>", "\n".join(t_html + ["</table>"])]
    md += ["## Metrics", ""] + t_md + [""]
    tasks = list(dict.fromkeys(t for t, _ in table))
    panels = [(t, [m for tt, m in table if tt == t],
               {c: [table[(t, m)][i] for tt, m in table if tt == t] for i, c in enumerate(columns)},
               [{columns[names.index(n) + 1] for n in flags[(t, m)]} for tt, m in table if tt == t])
              for t in tasks]
    bars = _bars_plot(panels, columns)
    if bars is not None:
        body.append(_img(bars, "metrics per run", "Metrics per task and run. Bar heights: fractions on "
                         "0..1, BLEU/chrF on 0..100, others against the largest value; real values on the bars; "
                         "red outline: regression."))
    _write_png(out_dir, "metrics.png", bars, md, "metrics per run")
    return _write_reports(out_dir, title, body, md)
