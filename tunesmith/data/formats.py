"""Read data files into canonical conversations, naming file and line for every bad row.

Canonical form: a list of {"role": system|user|assistant, "content": str} messages. Supported
row shapes (detected per row with format=auto):
  alpaca: {"instruction", "input"?, "output", "system"?}
  chat:   {"messages": [{"role", "content"}, ...]}  (OpenAI chat shape; system and multi-turn)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import Collector, Problem, TunesmithError, fail

ROLES = ("system", "user", "assistant")
MAX_REPORTED = 50  # a file with thousands of bad rows gets the first 50 and a count


@dataclass
class Example:
    """One conversation and where it came from."""

    messages: list[dict]
    file: str
    line: int


def iter_rows(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yield (line number, parsed row) from a .jsonl or .json file.

    A JSONL line that is not valid JSON yields a Problem in place of the row, so that one pass
    reports every bad line; a broken .json array stops at the first error (nothing after it parses).
    """
    path = Path(path)
    if not path.is_file():
        raise fail("data file not found", "check the path in data.train / data.validation", file=str(path))
    if path.suffix == ".json":
        yield from _iter_json_array(path)
        return
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                yield n, Problem(f"not valid JSON: {e.msg} at column {e.colno}",
                                 "each line of a .jsonl file must be one complete JSON object", file=str(path), line=n)


def _iter_json_array(path: Path) -> Iterator[tuple[int, object]]:
    """A .json file holding one array; each element is located by the line it starts on."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()

    def line_of(pos):
        return text.count("\n", 0, pos) + 1

    def skip(pos):
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def broken(pos, what):
        return fail(f"not valid JSON: {what}", "fix the JSON syntax (or use .jsonl, one row per line)",
                    file=str(path), line=line_of(min(pos, len(text))))

    pos = skip(0)
    if pos >= len(text) or text[pos] != "[":
        raise fail("a .json data file must hold one array of rows", "wrap the rows in [...] or use .jsonl",
                   file=str(path), line=line_of(pos))
    pos = skip(pos + 1)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                row, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise fail(f"not valid JSON: {e.msg}", "fix the JSON syntax", file=str(path),
                           line=e.lineno) from None
            yield line_of(pos), row
            pos = skip(end)
            if pos >= len(text):
                raise broken(pos, "the array is not closed with ']' (is the file cut off?)")
            if text[pos] == "]":
                pos += 1
                break
            if text[pos] != ",":
                raise broken(pos, "expected ',' or ']' after a row")
            pos = skip(pos + 1)
    if skip(pos) < len(text):
        raise broken(skip(pos), "text after the closing ']'")


def _text(row: dict, key: str, where: dict, required: bool = True) -> tuple[str | None, Problem | None]:
    value = row.get(key)
    if value is None and not required:
        return None, None
    if not isinstance(value, str):
        got = "missing" if key not in row else f"{type(value).__name__}, not text"
        return None, Problem(f"'{key}' is {got}", f"give '{key}' as a string", field=key, **where)
    if required and not value.strip():
        return None, Problem(f"'{key}' is empty", "fill it in or remove the row", field=key, **where)
    return value, None


def row_to_messages(row: object, fmt: str, where: dict) -> tuple[list[dict] | None, list[Problem]]:
    """Convert one parsed row to canonical messages, or return the problems found."""
    if not isinstance(row, dict):
        return None, [Problem(f"row is a {type(row).__name__}, not an object", "each row must be a JSON object",
                              **where)]
    if fmt == "auto":
        fmt = "chat" if "messages" in row else "alpaca" if "instruction" in row else ""
        if not fmt:
            keys = ", ".join(sorted(row)) or "none"
            return None, [Problem(f"cannot tell the format from the keys ({keys})",
                                  "use alpaca keys (instruction, input, output) or chat keys (messages)", **where)]
    return (_chat(row, where) if fmt == "chat" else _alpaca(row, where))


def _alpaca(row: dict, where: dict) -> tuple[list[dict] | None, list[Problem]]:
    problems = []
    instruction, p1 = _text(row, "instruction", where)
    context, p2 = _text(row, "input", where, required=False)
    output, p3 = _text(row, "output", where)
    system, p4 = _text(row, "system", where, required=False)
    problems = [p for p in (p1, p2, p3, p4) if p]
    if problems:
        return None, problems
    user = instruction if not (context and context.strip()) else f"{instruction}\n\n{context}"
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return messages, []


def _chat(row: dict, where: dict) -> tuple[list[dict] | None, list[Problem]]:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return None, [Problem("'messages' must be a non-empty list of {role, content}",
                              "see the OpenAI chat format", field="messages", **where)]
    problems, out = [], []
    for i, m in enumerate(msgs):
        f = f"messages[{i}]"
        if not isinstance(m, dict):
            problems.append(Problem("is not an object", "write {\"role\": ..., \"content\": ...}", field=f, **where))
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            problems.append(Problem(f"role {role!r} is not one of {', '.join(ROLES)}", "fix the role",
                                    field=f"{f}.role", **where))
        elif role == "system" and i != 0:
            problems.append(Problem("a system message must come first", "move it to the start",
                                    field=f"{f}.role", **where))
        if not isinstance(content, str):
            problems.append(Problem(f"content is {'missing' if content is None else type(content).__name__}",
                                    "give content as a string", field=f"{f}.content", **where))
        elif role == "assistant" and not content.strip():
            problems.append(Problem("assistant content is empty", "fill it in or drop the turn",
                                    field=f"{f}.content", **where))
        out.append({"role": role, "content": content})
    if not problems and not any(m["role"] == "assistant" for m in out):
        problems.append(Problem("no assistant message, so nothing to learn", "add the reply to learn",
                                field="messages", **where))
    return (None, problems) if problems else (out, [])


def load_examples(paths: list[str], fmt: str = "auto", system_prompt: str | None = None) -> list[Example]:
    """Load every row of every file; raise one TunesmithError listing every bad row (file:line)."""
    errors = Collector()
    examples: list[Example] = []
    for path in paths:
        before = len(examples) + len(errors.problems)
        try:
            for line, row in iter_rows(path):
                if isinstance(row, Problem):
                    errors.problems.append(row)
                    continue
                where = {"file": str(path), "line": line}
                messages, problems = row_to_messages(row, fmt, where)
                errors.problems.extend(problems)
                if messages is not None:
                    if system_prompt and messages[0]["role"] != "system":
                        messages = [{"role": "system", "content": system_prompt}] + messages
                    examples.append(Example(messages, str(path), line))
        except TunesmithError as e:
            errors.problems.extend(e.problems)
            continue
        if len(examples) + len(errors.problems) == before:
            errors.add("the file holds no rows", "check that it is the right file", file=str(path))
    n = len(errors.problems)
    if n == 1:
        raise TunesmithError(errors.problems)
    if n:
        more = f" (first {MAX_REPORTED} shown)" if n > MAX_REPORTED else ""
        raise TunesmithError(errors.problems[:MAX_REPORTED], title=f"{n} problems in the data{more}:")
    return examples
