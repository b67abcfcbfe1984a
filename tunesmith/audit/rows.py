"""Reading an audit's JSONL files (prompts, BBQ rows): every bad line named with file:line, at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tunesmith.errors import Collector, fail


def read_jsonl(path: str | Path, what: str, problem: Callable[[object], str | None], fix: str) -> list[dict]:
    """The rows of `path` (blank lines skipped) each tagged with its "line"; `problem(row)` says what is
    wrong with a row (None: nothing). Lines that are not JSON, or have a problem, are all reported
    together; a file with no rows is an error too."""
    errors = Collector(title=f"{path}: invalid {what}:")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                errors.add(f"not valid JSON: {e.msg}", "one JSON object per line", file=str(path), line=line_no)
                continue
            wrong = "a row must be a JSON object" if not isinstance(row, dict) else problem(row)
            if wrong:
                errors.add(wrong, fix, file=str(path), line=line_no)
                continue
            rows.append({**row, "line": line_no})
    errors.raise_if_any()
    if not rows:
        raise fail(f"no {what}", fix, file=str(path))
    return rows
