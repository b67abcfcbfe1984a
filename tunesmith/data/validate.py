"""Structural validation: every problem in the data files, with file, line and level, at once.

No tokenizer or model is loaded here, so a file's rows are checked in a fraction of a second
(`bench/validate_speed.py`); token statistics come after, when asked for (`data validate --stats`)
or when a config names a model. The rows go through the same reader and converters as training
(`load.read_file`), so a file that validates here never fails later on its rows.

Levels: an *error* makes the row unusable (exit code 2); a *warning* names something that is
probably a mistake but trains (exit code 0), e.g. two user turns in a row or a blank line.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.data.load import LoadReport, read_file
from tunesmith.data.readers import DEFAULT_MAX_ROW_BYTES
from tunesmith.errors import Problem, TunesmithError

MAX_LISTED = 10_000  # problems kept per level; the counts stay exact beyond it


@dataclass
class FileSpec:
    path: str
    format: str = "auto"
    columns: dict | None = None


@dataclass
class Validation:
    """The outcome of checking some files."""

    files: list[str]
    report: LoadReport

    @property
    def errors(self) -> list[Problem]:
        return self.report.problems

    @property
    def warnings(self) -> list[Problem]:
        return self.report.warnings

    @property
    def ok(self) -> bool:
        return not self.errors

    def diagnostics(self) -> list[Problem]:
        order = {f: i for i, f in enumerate(self.files)}
        return sorted(self.errors + self.warnings,
                      key=lambda p: (order.get(p.file, len(order)), p.line or 0, p.level != "error"))

    def summary_line(self) -> str:
        r = self.report

        def n(count: int, word: str) -> str:
            return f"{count} {word}{'s' * (count != 1)}"

        return (f"{n(len(self.files), 'file')}, {n(r.rows, 'row')} read, {r.kept} usable; "
                f"{n(len(self.errors), 'error')}, {n(r.n_warnings, 'warning')}")

    def raise_if_errors(self, shown: int = 50) -> None:
        """The errors as one TunesmithError, as training reports them."""
        if self.errors:
            n = sum(self.report.skipped.values())
            more = f" (first {shown} shown)" if len(self.errors) > shown else ""
            raise TunesmithError(self.errors[:shown], title=f"{n} bad row{'s' * (n != 1)} in the data{more}:")

    def as_dict(self) -> dict:
        r = self.report
        return {"ok": self.ok, "files": self.files, "rows": r.rows, "kept": r.kept, "kinds": dict(r.kinds),
                "rows_with_errors": dict(r.skipped), "errors": len(self.errors), "warnings": r.n_warnings,
                "problems": [p.as_dict() for p in self.diagnostics()]}


def check_files(files: list[FileSpec], max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, *, vision=None,
                config_path: str | None = None) -> Validation:
    """Read every row of every file through the training reader and collect all problems.

    `vision` (a config's VisionConfig): also open every image that image rows name, under
    vision.image_root (relative to `config_path`) or else beside the data file, as a vlm run will."""
    report = LoadReport(max_reported=MAX_LISTED)
    for spec in files:
        try:
            examples = read_file(spec.path, spec.format, spec.columns or None, report, max_row_bytes)
        except TunesmithError as e:  # a missing or unreadable file: reported with the others
            report.add_problems(e.problems)
            continue
        if vision is not None and any(ex.kind == "vision" for ex in examples):
            _check_images(examples, vision, config_path, report)
    return Validation([f.path for f in files], report)


def _check_images(examples: list, vision, config_path: str | None, report: LoadReport) -> None:
    """Each row with an image problem becomes a bad row (all its problems listed), like any other."""
    from tunesmith.data.vision import check_images

    by_row: dict = {}
    for p in check_images([ex for ex in examples if ex.kind == "vision"], vision, config_path).problems:
        by_row.setdefault(p.line, []).append(p)
    for problems in by_row.values():
        report.add_problems(problems)
        report.kept -= 1
        report.kinds["vision"] -= 1


def config_files(data) -> list[FileSpec]:
    """The files a config's data section reads, each with its format and column mapping."""
    specs = [FileSpec(p, data.format, data.columns) for p in data.train]
    specs += [FileSpec(s.path, s.format, s.columns) for s in data.sources]
    if data.validation:
        specs.append(FileSpec(data.validation, data.format, data.columns))
    return specs
