"""Recipe presets: tuned starting points as data files (one YAML per preset in this folder).

`preset: NAME` in a run config lays the preset's sections under the config's own (a key the config
sets wins), before the config is typed and checked, so a preset is exactly a config fragment.
Each file has a one-line `description` (what it is for) and `chosen_by` (the sweep and results that
picked its values, under bench/); neither is a config key. How each was chosen and what it reached
on held-out data: bench/results/presets.md and bench/results/efficacy.md.
"""

from __future__ import annotations

import difflib
from pathlib import Path

FOLDER = Path(__file__).parent
META = ("description", "chosen_by")  # preset-file keys that describe the preset, not the run


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def read(name: str) -> dict:
    """The preset's file as data (description and chosen_by included)."""
    import yaml

    return yaml.safe_load((FOLDER / f"{name}.yaml").read_text(encoding="utf-8")) or {}


def listing() -> list[tuple[str, str]]:
    """(name, one-line description) of every preset, for `tunesmith presets`."""
    return [(n, read(n).get("description", "")) for n in names()]


def apply(raw: dict, file: str | None = None, line: int | None = None) -> dict:
    """`raw` (a config tree naming a preset) with the preset's settings filled in under its own."""
    from tunesmith.errors import fail

    name = raw["preset"]
    if not isinstance(name, str) or name not in names():
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise fail(f"unknown preset {name!r}", f"{hint}presets: {', '.join(names())} (tunesmith presets)",
                   file=file, line=line, field="preset")
    base = {k: v for k, v in read(name).items() if k not in META}
    if (raw.get("data") or {}).get("validation") and "data" in base:
        # the config's validation file replaces the preset's split of the training rows (both set is an error)
        base["data"] = {k: v for k, v in base["data"].items() if k != "validation_fraction"}
    return _under(base, raw)


def _under(base: dict, top: dict) -> dict:
    """Deep merge: `top` wins; sections merge key by key."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _under(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
