"""One error type for everything a user can fix: bad config, bad data, a missing model.

The CLI prints these without a traceback and exits with code 2; tracebacks are for
bugs (or for `--debug`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_USER_ERROR = 2


@dataclass
class Problem:
    """One thing that is wrong, located as precisely as we can."""

    problem: str
    fix: str = ""
    file: str | None = None
    line: int | None = None
    field: str | None = None
    code: str = ""  # a short reason key (invalid_json, missing_field, ...) for counts by reason
    level: str = "error"  # or "warning": reported with its place, but the row is still used

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        if self.field:
            where += f"{self.field}: "
        text = where + self.problem
        if self.fix:
            text += f" ({self.fix})"
        return text

    def diagnostic(self) -> str:
        """Compiler style, with the level: `file:line: error: field: problem (fix)`."""
        where = (self.file or "") + (f":{self.line}" if self.line else "")
        rest = (f"{self.field}: " if self.field else "") + self.problem + (f" ({self.fix})" if self.fix else "")
        return f"{where}: {self.level}: {rest}" if where else f"{self.level}: {rest}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "level": self.level, "field": self.field, "code": self.code,
                "problem": self.problem, "fix": self.fix}


class TunesmithError(Exception):
    """A user-fixable error carrying one or more located problems."""

    def __init__(self, problems: Problem | list[Problem], title: str = ""):
        self.problems = problems if isinstance(problems, list) else [problems]
        self.title = title
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.title] if self.title else []
        if len(self.problems) == 1 and not self.title:
            return str(self.problems[0])
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def fail(problem: str, fix: str = "", *, file: str | None = None, line: int | None = None,
         field: str | None = None) -> TunesmithError:
    """Build (not raise) a single-problem error: `raise fail(...)` reads well at call sites."""
    return TunesmithError(Problem(problem, fix, file=file, line=line, field=field))


@dataclass
class Collector:
    """Collects problems so that a check reports all of them at once (STYLE rule 4)."""

    title: str = ""
    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: str, fix: str = "", **where) -> None:
        self.problems.append(Problem(problem, fix, **where))

    def raise_if_any(self) -> None:
        if len(self.problems) == 1:  # one problem reads best as one line: file:line: field: what (fix)
            raise TunesmithError(self.problems)
        if self.problems:
            raise TunesmithError(self.problems, title=self.title or f"{len(self.problems)} problems found:")
