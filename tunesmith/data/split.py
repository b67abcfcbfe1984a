"""Split rows into named parts (train / validation / test ...) without leaking between them.

Methods: random; stratified (each part keeps the label mix); temporal (oldest rows first, so a
model is evaluated on data newer than what it trained on); grouped (every row of a conversation,
user or document lands in one part). Splits return row indices, so the caller keeps its rows.

Library looked at: scikit-learn's train_test_split / StratifiedShuffleSplit / GroupShuffleSplit
split in two only, take one method per class and would add a heavy dependency for ~150 lines;
`datasets.Dataset.train_test_split` is random or stratified only, and also two-way.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Hashable
from datetime import datetime, timezone
from itertools import combinations

from tunesmith.errors import Collector, fail

METHODS = ("random", "stratified", "temporal", "grouped")
MAX_REPORTED = 20  # a key missing from every row of a big file is one mistake, not thousands
_MISSING = object()


# --------------------------------------------------------------------------- helpers


def get_path(row: dict, key: str) -> object:
    """row[key], or for a dotted key ("meta.user") the nested value; a literal "meta.user" key wins.

    Returns the module's _MISSING marker when there is no such value.
    """
    if isinstance(row, dict) and key in row:
        return row[key]
    value: object = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _hashable(value: object) -> Hashable:
    """Lists and dicts become their JSON text, so that any JSON value can name a group or label."""
    try:
        hash(value)
        return value
    except TypeError:
        return json.dumps(value, sort_keys=True, default=str)


def _values(rows: list[dict], key: str) -> list[Hashable]:
    """The key's value in every row, or one error naming every row (up to a limit) that lacks it."""
    errors = Collector(title=f"rows without a value at '{key}':")
    values: list[Hashable] = []
    for i, row in enumerate(rows):
        value = get_path(row, key)
        if value is _MISSING or value is None:
            if len(errors.problems) < MAX_REPORTED:
                errors.add(f"row {i} has no value at '{key}'", "fill it in or drop the row", field=key)
            continue
        values.append(_hashable(value))
    errors.raise_if_any()
    return values


def _check_ratios(ratios: dict[str, float]) -> None:
    if not ratios:
        raise fail("no splits given", "pass ratios such as {'train': 0.9, 'validation': 0.1}", field="ratios")
    bad = {k: v for k, v in ratios.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0}
    if bad:
        raise fail(f"ratios must be numbers >= 0, got {bad}", "e.g. {'train': 0.8, 'test': 0.2}", field="ratios")
    total = sum(ratios.values())
    if abs(total - 1.0) > 1e-6:
        raise fail(f"ratios must sum to 1, they sum to {total:g}: {ratios}",
                   "scale them so they add up to 1", field="ratios")


def allocate(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Split a count by ratios exactly (largest remainder): sizes add up to n, each within 1 of n*ratio.

    Ties in the remainder go to the split named first.
    """
    exact = {name: n * r for name, r in ratios.items()}
    sizes = {name: math.floor(x) for name, x in exact.items()}
    order = sorted(ratios, key=lambda k: -(exact[k] - sizes[k]))  # sorted() is stable: first named wins ties
    for name in order[: n - sum(sizes.values())]:
        sizes[name] += 1
    return sizes


# --------------------------------------------------------------------------- methods


def _random(n: int, ratios: dict[str, float], rng: random.Random) -> dict[str, list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    out, pos = {}, 0
    for name, size in allocate(n, ratios).items():
        out[name] = order[pos:pos + size]
        pos += size
    return out


def _stratified(labels: list[Hashable], ratios: dict[str, float], rng: random.Random) -> dict[str, list[int]]:
    """Per label, floor(count * ratio) rows go to each split; the leftover rows (fewer than the number
    of splits per label) go one per split to the splits furthest below their overall size. So every
    split has its exact overall size and each label is within one row of its share."""
    by_label: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    target = allocate(len(labels), ratios)
    sizes = {lab: {s: math.floor(len(ix) * r) for s, r in ratios.items()} for lab, ix in by_label.items()}
    deficit = {s: target[s] - sum(sizes[lab][s] for lab in by_label) for s in ratios}
    left = {lab: len(ix) - sum(sizes[lab].values()) for lab, ix in by_label.items()}
    # Ryser's greedy fill: the labels with the most leftovers choose first, each giving one row to
    # each of the splits that need the most; this meets every split's exact size whenever that can be met
    position = {s: i for i, s in enumerate(ratios)}
    for lab in sorted(by_label, key=lambda lab: (-left[lab], _sort_key(lab))):
        frac = {s: len(by_label[lab]) * r - math.floor(len(by_label[lab]) * r) for s, r in ratios.items()}
        for s in sorted(ratios, key=lambda s: (-deficit[s], -frac[s], position[s]))[: left[lab]]:
            sizes[lab][s] += 1
            deficit[s] -= 1
    out: dict[str, list[int]] = {s: [] for s in ratios}
    for lab in sorted(by_label, key=_sort_key):
        ix = by_label[lab][:]
        rng.shuffle(ix)
        pos = 0
        for s in ratios:
            out[s] += ix[pos:pos + sizes[lab][s]]
            pos += sizes[lab][s]
    return out


def _sort_key(value: Hashable) -> tuple[str, str]:
    # labels and groups may mix types (1, "1", None): order by type name, then text, for determinism
    return type(value).__name__, str(value)


def _timestamp(value: object) -> float | None:
    """Seconds since 1970 for a number, a numeric string or an ISO 8601 date/time (naive = UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        return float(value)
    except ValueError:
        pass
    text = value.strip()
    if text.endswith(("Z", "z")):  # datetime.fromisoformat reads a trailing Z only from Python 3.11
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _temporal(rows: list[dict], key: str, ratios: dict[str, float]) -> dict[str, list[int]]:
    errors = Collector(title=f"dates at '{key}' that cannot be read:")
    stamps = []
    for i, row in enumerate(rows):
        value = get_path(row, key)
        stamp = None if value is _MISSING else _timestamp(value)
        if stamp is None:
            if len(errors.problems) < MAX_REPORTED:
                shown = "missing" if value is _MISSING else repr(value)
                errors.add(f"row {i}: {shown} is not a date", "use ISO 8601 (2024-05-01 or "
                           "2024-05-01T12:00:00Z) or a Unix timestamp", field=key)
            continue
        stamps.append((stamp, i))
    errors.raise_if_any()
    order = [i for _, i in sorted(stamps)]  # equal times keep row order
    out, pos = {}, 0
    for name, size in allocate(len(rows), ratios).items():
        out[name] = order[pos:pos + size]
        pos += size
    return out


def _grouped(groups: list[Hashable], ratios: dict[str, float], rng: random.Random) -> dict[str, list[int]]:
    """Groups in random order, each to the split furthest below its target size, so sizes come
    out close to the ratios (within about one group's size)."""
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    order = sorted(members, key=_sort_key)
    rng.shuffle(order)
    target = {s: len(groups) * r for s, r in ratios.items()}
    position = {s: i for i, s in enumerate(ratios)}
    out: dict[str, list[int]] = {s: [] for s in ratios}
    for g in order:
        s = max(ratios, key=lambda s: (target[s] - len(out[s]), -position[s]))
        out[s] += members[g]
    return out


# --------------------------------------------------------------------------- public


def split_rows(rows: list[dict], ratios: dict[str, float], *, method: str = "random", seed: int = 42,
               key: str | None = None) -> dict[str, list[int]]:
    """Row indices for each named split, e.g. {"train": [...], "test": [...]}, ascending in each.

    method: "random"; "stratified" (key = label field); "temporal" (key = date field, ISO 8601 or
    Unix time; the first split named gets the oldest rows, the last the newest); "grouped" (key =
    group field such as a conversation or user id; no group spans two splits). `key` may be a
    dotted path ("meta.user"). Ratios must sum to 1. The same seed always gives the same split.
    """
    _check_ratios(ratios)
    if method not in METHODS:
        raise fail(f"unknown split method '{method}'", f"use one of {', '.join(METHODS)}", field="method")
    if method != "random" and not key:
        raise fail(f"split method '{method}' needs key=", "name the field to split by, e.g. key='label'",
                   field="key")
    rng = random.Random(seed)
    if method == "random":
        out = _random(len(rows), ratios, rng)
    elif method == "stratified":
        out = _stratified(_values(rows, key), ratios, rng)
    elif method == "temporal":
        out = _temporal(rows, key, ratios)
    else:
        out = _grouped(_values(rows, key), ratios, rng)
    return {name: sorted(ix) for name, ix in out.items()}


def leakage(rows: list[dict], splits: dict[str, list[int]], key: str) -> dict[tuple[str, str], list]:
    """Values of `key` found in more than one split, per pair of splits: {("train", "test"): [...]}.

    Empty when nothing leaks. Rows without the key are skipped (they name no group).
    """
    seen: dict[str, dict[Hashable, None]] = {}
    for name, ix in splits.items():
        values = (get_path(rows[i], key) for i in ix)
        seen[name] = dict.fromkeys(_hashable(v) for v in values if v is not _MISSING and v is not None)
    out: dict[tuple[str, str], list] = {}
    for a, b in combinations(splits, 2):
        shared = [v for v in seen[a] if v in seen[b]]
        if shared:
            out[(a, b)] = sorted(shared, key=_sort_key)
    return out
