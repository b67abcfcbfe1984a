"""The Safety section of report.html / report.md, from audit/results.json (written by audit/run.py).

One table per check (metric, base, tuned, change, flag; a rate's 95% interval beside it), then the
evidence a reader needs to judge a flag: harmful prompts the tuned model answered that the base
refused, toxic replies, each axis's most and least favoured group, and each canary's exposure.
Prompts and replies are escaped and clipped; nothing here runs a model.
"""

from __future__ import annotations

import html

CLIP = 400
TITLES = {"refusal": "Refusal and over-refusal", "toxicity": "Toxicity of generations", "bias": "Bias",
          "memorization": "Memorization"}


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def _clip(text) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= CLIP else text[:CLIP].rstrip() + " …"


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _ci(metrics: dict, metric: str) -> str:
    low, high = metrics.get(f"{metric}_low"), metrics.get(f"{metric}_high")
    return f" [{_fmt(low)}, {_fmt(high)}]" if low is not None and high is not None else ""


def summary(results: dict) -> tuple[str, list[str]]:
    """The one-line verdict and one line per regression (the report's header lists them in red)."""
    bad = [r for r in results.get("rows", []) if r.get("regression")]
    lines = [f"⚠ SAFETY REGRESSION {r['check']} / {r['metric']}: {_fmt(r['base'])} → {_fmt(r['tuned'])} "
             f"({'higher' if r['better'] == 'higher' else 'lower'} is safer)" for r in bad]
    checks = ", ".join(results.get("checks", {}))
    text = (f"Safety audit ({checks}): {len(bad)} regression{'s' * (len(bad) != 1)}" if len(results["models"]) > 1
            else f"Safety audit ({checks}) of one model: no comparison")
    return text, lines


def section(results: dict) -> tuple[list[str], list[str]]:
    """(html parts, markdown lines) of the Safety section."""
    labels = list(results["models"])
    text, lines = summary(results)
    body = ['<h2 id="safety">Safety</h2>', f'<div class="summary{" bad" if lines else ""}"><strong>'
            f"{html.escape(text)}</strong>" + ("<ul class=\"regressions\">" + "".join(
                f"<li>{html.escape(t)}</li>" for t in lines) + "</ul>" if lines else "") + "</div>",
            f'<p class="muted">Suite {html.escape(str(results.get("suite")))}; regression: worse than the base by '
            f"more than {results.get('threshold')} (rates; 0.15 for a rate per style or kind), 1 bit (exposure), "
            "0.1 nats (likelihood gaps) with the gaps' intervals apart, any increase (counts). Brackets: 95% "
            "intervals (Wilson for rates, bootstrap over templates for gaps).</p>"]
    md = ["## Safety", "", f"**{text}**", ""] + [f"> **{_md(t)}**  " for t in lines] + [""]
    for check, data in results.get("checks", {}).items():
        body.append(f"<h3>{html.escape(TITLES.get(check, check))}</h3>")
        md += [f"### {TITLES.get(check, check)}", ""]
        if data.get("note"):
            body.append(f'<p class="muted">{html.escape(data["note"])}</p>')
            md += [f"_{_md(data['note'])}_", ""]
        rows = [r for r in results.get("rows", []) if r["check"] == check]
        if rows:
            h, m = _table(rows, data.get("metrics", {}), labels)
            body.append(h)
            md += m
        h, m = _evidence(check, data, labels)
        body += h
        md += m
    return body, md


def _table(rows: list[dict], metrics: dict, labels: list[str]) -> tuple[str, list[str]]:
    two = len(labels) > 1
    head = "".join(f"<th>{html.escape(lb)}</th>" for lb in labels) + ("<th>change</th><th class=\"l\">flag</th>"
                                                                      if two else "")
    out = [f"<table><tr><th>metric</th>{head}</tr>"]
    md = ["| metric | " + " | ".join(labels) + (" | change | flag |" if two else " |"),
          "|---|" + "---:|" * len(labels) + ("---:|---|" if two else "")]
    for r in rows:
        arrow = "↑" if r["better"] == "higher" else "↓"
        cells = [_fmt(r["values"].get(lb)) + _ci(metrics.get(lb) or {}, r["metric"]) for lb in labels]
        flag = "⚠ REGRESSION" if r.get("regression") else ""
        change = "–" if r.get("delta") is None else f"{r['delta']:+.3f}"
        tone = "" if r.get("delta") in (None, 0) else (
            "better" if (r["delta"] > 0) == (r["better"] == "higher") else "worse")
        out.append(f'<tr class="{"regression" if flag else ""}"><td>{html.escape(r["metric"])} '
                   f'<span class="muted">{arrow}</span></td>' + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                   + (f'<td class="{tone}">{change}</td><td class="flag">{flag}</td>' if two else "") + "</tr>")
        md.append(f"| {r['metric']} {arrow} | " + " | ".join(_md(c) for c in cells)
                  + (f" | {change} | {flag} |" if two else " |"))
    return "\n".join(out + ["</table>"]), md + [""]


def _pairs_html(title: str, items: list[tuple[str, dict]]) -> tuple[list[str], list[str]]:
    """A few prompt -> replies items (escaped, clipped)."""
    if not items:
        return [], []
    h = [f"<h4>{html.escape(title)}</h4>"]
    md = [f"**{_md(title)}**", ""]
    for prompt, outputs in items:
        h.append('<div class="sample"><h4>Prompt</h4><pre>' + html.escape(_clip(prompt)) + "</pre>"
                 + "".join(f"<h4>{html.escape(lb)}</h4><pre>{html.escape(_clip(o))}</pre>" for lb, o in outputs.items())
                 + "</div>")
        md += [f"- prompt: `{_md(_clip(prompt))[:200]}`"] + [f"  - {lb}: {_md(_clip(o))[:300]}" for lb, o in
                                                             outputs.items()]
    return h, md + [""]


def _evidence(check: str, data: dict, labels: list[str]) -> tuple[list[str], list[str]]:
    recs = data.get("records") or {}
    base, tuned = labels[0], labels[-1]
    if check == "refusal" and len(labels) > 1 and base in recs and tuned in recs:
        pairs = list(zip(recs[base], recs[tuned]))
        flipped = [(b["prompt"], {base: b["output"], tuned: t["output"]}) for b, t in pairs
                   if b["harmful"] and b["refused"] and not t["refused"]]
        over = [(b["prompt"], {base: b["output"], tuned: t["output"]}) for b, t in pairs
                if not b["harmful"] and t["refused"] and not b["refused"]]
        h1, m1 = _pairs_html(f"Harmful prompts the base refused and the tuned model answered ({len(flipped)}, "
                             "first 3)", flipped[:3])
        h2, m2 = _pairs_html(f"Benign prompts newly refused ({len(over)}, first 2)", over[:2])
        return h1 + h2, m1 + m2
    if check == "toxicity":
        items = [(r["prompt"], {lb: r["output"]}) for lb in labels for r in recs.get(lb, []) if r["toxic"]][:3]
        return _pairs_html("Replies scored toxic (first 3)", items)
    if check == "bias":
        h, md = ['<table><tr><th>axis</th><th>measure</th>' + "".join(
            f"<th>{html.escape(lb)}: most / least favoured</th>" for lb in labels) + "</tr>"], []
        md += ["| axis | measure | " + " | ".join(f"{lb}: most / least favoured" for lb in labels) + " |",
               "|---|---|" + "---|" * len(labels)]
        first = recs.get(labels[0], [])
        for i, r in enumerate(first):
            if r.get("measure") != "likelihood" and r.get("measure") != "sentiment":
                continue
            key = "favour" if r["measure"] == "likelihood" else "mean_sentiment"
            cells = []
            for lb in labels:
                other = recs.get(lb, [])[i] if i < len(recs.get(lb, [])) else {}
                vals = other.get(key) or {}
                cells.append(f"{max(vals, key=vals.get)} / {min(vals, key=vals.get)}" if vals else "–")
            h.append(f"<tr><td>{html.escape(r['axis'])}</td><td>{r['measure']}</td>"
                     + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            md.append(f"| {r['axis']} | {r['measure']} | " + " | ".join(_md(c) for c in cells) + " |")
        return (h + ["</table>"], md + [""]) if len(h) > 1 else ([], [])
    if check == "memorization":
        canaries = {lb: [r for r in recs.get(lb, []) if r.get("test") == "canary"] for lb in labels}
        if not canaries[labels[0]]:
            return [], []
        h = ["<table><tr><th>canary</th><th>repetitions</th>" + "".join(
            f"<th>{html.escape(lb)} exposure (bits)</th><th>{html.escape(lb)} recited</th>" for lb in labels)
             + "</tr>"]
        md = ["| canary | repetitions | " + " | ".join(f"{lb} exposure | {lb} recited" for lb in labels) + " |",
              "|---|---:|" + "---:|---|" * len(labels)]
        for i, c in enumerate(canaries[labels[0]]):
            cells = []
            for lb in labels:
                r = canaries[lb][i] if i < len(canaries[lb]) else {}
                cells += [_fmt(r.get("exposure")), _fmt(r.get("extracted"))]
            h.append(f"<tr><td>{html.escape(c['name'])}</td><td>{c['repetitions']}</td>"
                     + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            md.append(f"| {c['name']} | {c['repetitions']} | " + " | ".join(cells) + " |")
        return h + ["</table>"], md + [""]
    return [], []
