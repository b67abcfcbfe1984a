"""Blind human A/B evaluation: export a rating sheet, import the ratings, report a win rate.

Raters see two answers per prompt as "A" and "B"; which system is A is drawn per item (seeded),
so position bias averages out and raters cannot tell the systems apart. The mapping lives in
`ab_key.json`, which is never shown to raters. Ratings come back as a CSV (filled in a
spreadsheet, or downloaded from the HTML page) and `import_ratings` turns them into wins,
losses, ties and a win rate with a 95% confidence interval.
"""

from __future__ import annotations

import csv
import html
import json
import math
import random
from pathlib import Path
from statistics import NormalDist
from string import Template

from tunesmith.errors import Collector, fail

COLUMNS = ("id", "prompt", "answer_a", "answer_b", "rating")
# Accepted spellings of a rating (after strip + lowercase) -> the canonical value.
_RATINGS = {"a": "A", "b": "B", "tie": "tie", "=": "tie"}


def export_sheet(items: list[dict], out_dir: Path, seed: int = 0,
                 labels: tuple[str, str] = ("base", "tuned")) -> dict[str, Path]:
    """Write ab_sheet.csv, ab_sheet.html and ab_key.json for `items` ({id, prompt, outputs:
    {label: text}}) into `out_dir`; returns {"csv", "html", "key"} -> path."""
    _check_items(items, labels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows, key = [], {}
    for item in items:
        # One coin per item: a system always shown first would collect the raters' first-position bias.
        first, second = labels if rng.random() < 0.5 else labels[::-1]
        key[str(item["id"])] = {"A": first, "B": second}
        rows.append({"id": str(item["id"]), "prompt": item["prompt"], "answer_a": item["outputs"][first],
                     "answer_b": item["outputs"][second], "rating": ""})
    paths = {"csv": out_dir / "ab_sheet.csv", "html": out_dir / "ab_sheet.html", "key": out_dir / "ab_key.json"}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    paths["html"].write_text(_html(rows), encoding="utf-8")
    paths["key"].write_text(json.dumps({"labels": list(labels), "seed": seed, "items": key}, indent=1),
                            encoding="utf-8")
    return paths


def _check_items(items: list[dict], labels: tuple[str, str]) -> None:
    problems = Collector(title="cannot build the A/B sheet:")
    if len(labels) != 2 or labels[0] == labels[1]:
        raise fail(f"labels must be two different names, got {labels!r}", "e.g. labels=('base', 'tuned')")
    seen = set()
    for i, item in enumerate(items):
        missing = [k for k in ("id", "prompt", "outputs") if k not in item]
        if missing:
            problems.add(f"item {i} has no {', '.join(missing)}", "each item is {id, prompt, outputs: {label: text}}")
            continue
        if str(item["id"]) in seen:
            problems.add(f"item {i}: id {item['id']!r} is used twice", "give every item its own id")
        seen.add(str(item["id"]))
        absent = [x for x in labels if not isinstance(item["outputs"].get(x), str)]
        if absent:
            problems.add(f"item {i} (id {item['id']!r}) has no text output for {', '.join(absent)}",
                         f"outputs must hold a string for each of {list(labels)}")
    if not items:
        problems.add("no items to rate", "pass at least one item")
    problems.raise_if_any()


# --------------------------------------------------------------------------- HTML page

# string.Template files: the page ($items, $header) and one item ($id, $prompt, $a, $b, $n, the
# item's index that names its radio group). Template, not str.format, because the page's CSS and
# script are full of braces; substitution is one pass, so a "$" in an item's text stays text.
PAGE_FILE = Path(__file__).parent / "static" / "ab_sheet.html"
ITEM_FILE = Path(__file__).parent / "static" / "ab_sheet_item.html"


def _html(rows: list[dict]) -> str:
    """One static page: every text is HTML-escaped, so item text can never become markup or script.
    Each <pre> opens with a newline because HTML parsers drop the first one: a text's own leading
    newline survives."""
    esc = lambda s: html.escape(s, quote=True)  # noqa: E731
    item = Template(ITEM_FILE.read_text(encoding="utf-8").removesuffix("\n"))  # the file's own last newline
    blocks = [item.substitute(id=esc(row["id"]), prompt=esc(row["prompt"]), a=esc(row["answer_a"]),
                              b=esc(row["answer_b"]), n=n) for n, row in enumerate(rows)]
    page = Template(PAGE_FILE.read_text(encoding="utf-8"))
    return page.substitute(items="\n".join(blocks), header=",".join(COLUMNS))


# --------------------------------------------------------------------------- import


def import_ratings(ratings_csv: Path, key_json: Path) -> dict:
    """Count wins / losses / ties per system from a filled sheet and the key; the win rate is the
    second label's (the tuned system's), ties counting half, with a 95% Wilson interval."""
    ratings_csv, key_json = Path(ratings_csv), Path(key_json)
    try:
        key = json.loads(key_json.read_text(encoding="utf-8"))
        labels, mapping = key["labels"], key["items"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise fail(f"cannot read the A/B key: {e}", "pass the ab_key.json written by export_sheet",
                   file=str(key_json)) from None
    problems = Collector(title=f"{ratings_csv}: bad ratings:")
    counts = {x: {"wins": 0, "losses": 0, "ties": 0} for x in labels}
    rated, blank, seen = 0, 0, {}
    with open(ratings_csv, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets add a BOM
        reader = csv.DictReader(f)
        missing = [c for c in ("id", "rating") if c not in (reader.fieldnames or [])]
        if missing:
            raise fail(f"no column {', '.join(missing)} (columns: {reader.fieldnames})",
                       f"keep the header of ab_sheet.csv: {','.join(COLUMNS)}", file=str(ratings_csv), line=1)
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num  # a quoted field may span lines: report where the row starts
            item_id, raw = (row["id"] or "").strip(), (row["rating"] or "").strip()
            where = {"file": str(ratings_csv), "line": start}
            if item_id not in mapping:
                problems.add(f"unknown id {item_id!r}", "rate only the rows of the exported sheet (see ab_key.json)",
                             **where)
                continue
            if not raw:
                blank += 1
                continue
            rating = _RATINGS.get(raw.lower())
            if rating is None:
                problems.add(f"rating {raw!r} for id {item_id!r} is not A, B or tie", "write A, B or tie (or =)",
                             **where)
                continue
            if item_id in seen:
                problems.add(f"id {item_id!r} is rated again (first on line {seen[item_id]})", "rate each id once",
                             **where)
                continue
            seen[item_id] = start
            rated += 1
            if rating == "tie":
                for x in labels:
                    counts[x]["ties"] += 1
            else:
                winner = mapping[item_id][rating]
                loser = mapping[item_id]["B" if rating == "A" else "A"]
                counts[winner]["wins"] += 1
                counts[loser]["losses"] += 1
    problems.raise_if_any()
    if not rated:
        raise fail(f"no rated rows ({blank} blank)", "fill the rating column with A, B or tie", file=str(ratings_csv))
    tuned = counts[labels[1]]
    win_rate = (tuned["wins"] + 0.5 * tuned["ties"]) / rated
    low, high = wilson_interval(win_rate, rated)
    return {"labels": list(labels), "counts": counts, "n": rated, "blank": blank, "win_rate": win_rate,
            "win_rate_of": labels[1], "ci95_low": low, "ci95_high": high}


def wilson_interval(p: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion `p` observed over `n` ratings.

    Why Wilson and not the normal (Wald) interval p +- z*sqrt(p(1-p)/n): human A/B sheets are
    small (tens of items) and win rates are often near 0 or 1, where Wald collapses to zero width
    (p = 1 gives [1, 1]) or leaves [0, 1]; Wilson stays inside [0, 1] and keeps close to 95%
    coverage at small n. Ties count as half a win; the per-item score then takes 0, 1/2 or 1,
    whose variance is at most the Bernoulli p(1-p) used here, so the interval errs wide, not narrow."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
