"""Data files -> canonical Examples, with every problem reported: the one loader behind validation,
training, cleaning and evaluation.

Rows are read by `readers.iter_rows` and converted by `formats.row_to_example`; this module adds
what needs the whole file: the CSV/TSV header checked once (line 1), rows of a minority kind or
label kind, a file with no rows, and the error/warning bookkeeping (`LoadReport`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.data.formats import Example, detect, row_to_example
from tunesmith.data.readers import DEFAULT_MAX_ROW_BYTES, iter_rows
from tunesmith.errors import Problem, TunesmithError

MAX_REPORTED = 50  # a file with thousands of bad rows gets the first 50 and a count


@dataclass
class LoadReport:
    """What loading did: rows read, kept, skipped by reason (never silently), and warnings."""

    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)  # errors: the first `max_reported`
    kinds: Counter = field(default_factory=Counter)
    warnings: list[Problem] = field(default_factory=list)  # the first `max_reported`
    n_warnings: int = 0
    max_reported: int = MAX_REPORTED

    def add_problems(self, problems: list[Problem]) -> None:
        """One bad row's errors (it counts once, under its first error's reason), or warnings."""
        errors = [p for p in problems if p.level == "error"]
        if errors:
            self.skipped[errors[0].code or "invalid"] += 1
        self.problems.extend(errors[:max(self.max_reported - len(self.problems), 0)])
        self.add_warnings([p for p in problems if p.level != "error"])

    def add_warnings(self, warnings: list[Problem]) -> None:
        self.n_warnings += len(warnings)
        self.warnings.extend(warnings[:max(self.max_reported - len(self.warnings), 0)])

    def summary(self) -> dict:
        return {"rows": self.rows, "kept": self.kept, "skipped": dict(self.skipped), "kinds": dict(self.kinds),
                "problems": [str(p) for p in self.problems], "warnings": self.n_warnings,
                "warning_list": [str(p) for p in self.warnings]}


# The columns each format needs, for checking a CSV/TSV header once instead of every row.
REQUIRED = {"alpaca": ("instruction", "output"), "chat": ("messages",), "sharegpt": ("conversations",),
            "preference": ("chosen", "rejected"), "kto": ("prompt", "completion", "label"),
            "classification": ("text", "label"), "text": ("text",), "prompt": ("prompt",)}


def check_header(path: str, fmt: str = "auto", columns: dict | None = None) -> Problem | None:
    """A .csv/.tsv header that fits no format (auto) or lacks the format's columns: one problem on
    line 1, instead of the same error on every data row."""
    from tunesmith.data.readers import read_header

    header = read_header(path)
    if not header:
        return None  # empty file, or a first line the reader reports itself
    names = set(header)
    if columns:
        names = (names - set(columns.values())) | {canon for canon, src in columns.items() if src in names}
    found = detect(dict.fromkeys(names)) if fmt == "auto" else fmt
    missing = [k for k in REQUIRED.get(found, ()) if k not in names] if found else ["text", "label"]
    shown = ", ".join(header)
    if not missing and found == "text" and fmt == "auto" and len(names) > 1:
        # 'text' beside other columns but no 'label': in a table that is nearly always a
        # classification file with its label column misnamed; raw text can say so explicitly.
        other = next(h for h in header if h != "text" and h not in (columns or {}).values())
        return Problem(f"the header ({shown}) has 'text' but no 'label' column: classification rows need both",
                       f"map the label column, e.g. data.columns: {{label: {other}}}; for raw text, set "
                       "data.format=text", file=str(path), line=1, code="bad_header")
    if not missing:
        return None
    if fmt == "auto":
        what = (f"the header ({shown}) has no column tunesmith recognises: classification rows need 'text' and "
                "'label', instruction rows 'instruction' and 'output', raw text 'text'")
    else:
        what = f"the header ({shown}) has no {' or '.join(map(repr, missing))} column, which data.format={fmt} needs"
    others = [h for h in header if h not in ("text", "label")]
    if "label" in header and others:
        example = f"{{text: {others[0]}}}"
    elif len(others) >= 2:
        example = f"{{text: {others[0]}, label: {others[1]}}}"
    else:
        example = "{text: YOUR_TEXT_COLUMN, label: YOUR_LABEL_COLUMN}"
    return Problem(what, f"rename the header's columns, or map them with data.columns, e.g. data.columns: {example}",
                   file=str(path), line=1, code="bad_header")


_INTEGER = re.compile(r"-?\d+")


def _label_kind(label: str | int) -> tuple[str, str]:
    """(family, type) of a class label: integers (JSON numbers or digit strings, as CSV gives
    them) against names; within integers, JSON numbers against strings."""
    if isinstance(label, int):
        return "integer", "number"
    return ("integer", "string") if _INTEGER.fullmatch(label) else ("name", "string")


_KEYS_OF_KIND = {"preference": "prompt, chosen and rejected", "kto": "prompt, completion and label (true/false)",
                 "classification": "text and label", "text": "text", "prompt": "prompt",
                 "chat": "messages (or instruction and output)",
                 "vision": "messages with image parts (or image and conversations)"}
# Kinds that may share a file: a vision-language file often holds some text-only conversations.
_KIND_FAMILY = {"vision": "chat"}


def _mixed_kinds(examples: list[Example]) -> list[tuple[Example, str, str]]:
    """Rows whose kind is the minority in their file. Formats are detected per row from the keys,
    so a preference row that lost its 'rejected' reads as a prompt row, and a classification row
    without its label as raw text: valid rows of the wrong kind, which training would misuse."""
    family = [_KIND_FAMILY.get(e.kind, e.kind) for e in examples]
    counts = Counter(family)
    if len(counts) < 2:
        return []
    first = family[0]
    major = max(counts, key=lambda k: (counts[k], k == first))
    return [(e, f"this row reads as a {e.kind} row, while {counts[major]} of {len(examples)} rows in this file "
                f"are {major} rows", f"{major} rows need {_KEYS_OF_KIND[major]}")
            for e, f in zip(examples, family) if f != major]


def _mixed_labels(examples: list[Example]) -> list[tuple[Example, str, str]]:
    """Classification rows whose label kind is the minority in their file, with the reason: a file
    of integer ids with a stray class name (or the reverse) trains a class that should not exist.
    On a tie, the first row's kind is taken as the file's convention."""
    rows = [(e, _label_kind(e.extra["label"])) for e in examples if e.kind == "classification"]
    bad: list[tuple[Example, str]] = []
    for level, describe in ((0, {"integer": ("an integer id", "integer ids"), "name": ("a class name", "class names")}),
                            (1, {"number": ("a JSON number", "JSON numbers"), "string": ("a string", "strings")})):
        pool = [(e, k) for e, k in rows if level == 0 or k[0] == "integer"]
        counts = Counter(k[level] for _, k in pool)
        if len(counts) < 2:
            continue
        first = pool[0][1][level]
        major = max(counts, key=lambda k: (counts[k], k == first))
        for e, k in pool:
            if k[level] != major:
                bad.append((e, f"{e.extra['label']!r} is {describe[k[level]][0]}, while {counts[major]} of "
                               f"{len(pool)} rows in this file use {describe[major][1]}",
                            "use one kind of label in the whole file: class names, or integer ids"))
        rows = [(e, k) for e, k in pool if k[level] == major]
    return bad


def read_file(path: str, fmt: str = "auto", columns: dict | None = None, report: LoadReport | None = None,
              max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> list[Example]:
    """Every row of one file as Examples; errors and warnings go to `report` (a missing file raises).
    The one reader behind validation, training, cleaning and evaluation."""
    report = report if report is not None else LoadReport()
    before = report.rows
    if str(path).lower().endswith((".csv", ".tsv")) and Path(path).is_file():
        bad_header = check_header(path, fmt, columns)
        if bad_header:
            report.add_problems([bad_header])
            return []
    warnings: list[Problem] = []
    examples: list[Example] = []
    name = str(path)
    for line, row in iter_rows(path, max_row_bytes, warnings):
        report.rows += 1
        if isinstance(row, Problem):
            report.add_problems([row])
            continue
        ex, problems = row_to_example(row, fmt, {"file": name, "line": line}, columns, warnings)
        if problems:
            report.add_problems(problems)
        else:
            examples.append(ex)
    for code, bad in (("mixed_kinds", _mixed_kinds(examples)), ("mixed_labels", _mixed_labels(examples))):
        drop = {id(e) for e, _, _ in bad}
        for e, why, fix in bad:
            report.add_problems([Problem(why, fix, file=e.file, line=e.line, code=code,
                                         field="label" if code == "mixed_labels" else None)])
        examples = [e for e in examples if id(e) not in drop]
    report.kept += len(examples)
    report.kinds.update(e.kind for e in examples)
    if report.rows == before:  # blank lines of a file with no rows are that file's one problem
        report.add_problems([Problem("the file holds no rows", "check that it is the right file", file=str(path),
                                     code="empty_file")])
        warnings = [w for w in warnings if w.code != "blank_line"]
    report.add_warnings(sorted(warnings, key=lambda p: p.line or 0))
    return examples


def load_examples(paths: list[str], fmt: str = "auto", system_prompt: str | None = None, *,
                  columns: dict | None = None, on_error: str = "fail",
                  max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, report: LoadReport | None = None) -> list[Example]:
    """Load every row of every file. on_error=fail raises one TunesmithError listing every bad row
    (file:line, first MAX_REPORTED); on_error=skip drops them and counts them by reason in `report`."""
    report = report if report is not None else LoadReport()
    examples: list[Example] = []
    for path in paths:
        try:
            for ex in read_file(path, fmt, columns, report, max_row_bytes):
                if system_prompt and ex.messages and ex.messages[0]["role"] != "system":
                    ex.messages = [{"role": "system", "content": system_prompt}] + ex.messages
                examples.append(ex)
        except TunesmithError as e:  # a missing or unreadable file, or a broken .json array
            if on_error == "skip":
                raise  # skipping applies to rows, never to whole files
            report.add_problems(e.problems)  # reported with every bad row of the other files
    n_bad = sum(report.skipped.values())
    if n_bad and on_error == "fail":
        if n_bad == 1 and len(report.problems) == 1:
            raise TunesmithError(report.problems)
        more = f" (first {len(report.problems)} shown)" if n_bad > len(report.problems) else ""
        raise TunesmithError(report.problems, title=f"{n_bad} bad rows in the data{more}:")
    return examples
