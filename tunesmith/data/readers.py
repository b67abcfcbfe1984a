"""Read data files row by row, streaming, with the line (or row) each record starts on.

Every reader yields `(line, row)` where `row` is a dict, or a `Problem` in place of a row that
could not be read (bad JSON, bad UTF-8, an oversized line), so one pass reports every bad line
and memory stays flat however big the file is.

  .jsonl          one JSON object per line
  .json           one array of objects (parsed whole: JSON arrays cannot be streamed safely)
  .txt            raw text; each block of lines separated by a blank line is one {"text": ...} row
  .csv / .tsv     a header row, then one record per row (quoted fields may span lines)
  .parquet        row groups streamed in batches through pyarrow; "line" is the 1-based row number
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from tunesmith.errors import Problem, fail

SUFFIXES = (".jsonl", ".json", ".txt", ".csv", ".tsv", ".parquet")
DEFAULT_MAX_ROW_BYTES = 1_000_000


def iter_rows(path: str | Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[tuple[int, object]]:
    """Yield (line, row or Problem) from any supported file."""
    path = Path(path)
    if not path.is_file():
        raise fail("data file not found", "check the path in data.train / data.validation", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl(path, max_row_bytes)
    elif suffix == ".json":
        yield from _json_array(path)
    elif suffix == ".txt":
        yield from _text_blocks(path)
    elif suffix in (".csv", ".tsv"):
        yield from _delimited(path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        yield from _parquet(path)
    else:
        raise fail(f"unsupported file type '{path.suffix}'", f"use one of {', '.join(SUFFIXES)}", file=str(path))


def _decode(raw: bytes, path: Path, n: int) -> str | Problem:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Problem(f"not valid UTF-8 (byte {e.start + 1} of the line)", "re-encode the file as UTF-8",
                       file=str(path), line=n, code="invalid_utf8")


def _jsonl(path: Path, max_row_bytes: int) -> Iterator[tuple[int, object]]:
    with open(path, "rb") as f:  # bytes, so that one bad line cannot stop the whole file
        for n, raw in enumerate(f, start=1):
            if len(raw) > max_row_bytes:
                yield n, Problem(f"line is {len(raw) / 1e6:.1f} MB, over the {max_row_bytes / 1e6:.1f} MB limit",
                                 "split the record, or raise data.max_row_bytes", file=str(path), line=n,
                                 code="too_large")
                continue
            text = _decode(raw, path, n)
            if isinstance(text, Problem):
                yield n, text
                continue
            if not text.strip():
                continue
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                yield n, Problem(f"not valid JSON: {e.msg} at column {e.colno}",
                                 "each line of a .jsonl file must be one complete JSON object", file=str(path),
                                 line=n, code="invalid_json")


def _json_array(path: Path) -> Iterator[tuple[int, object]]:
    """A .json file holding one array; each element is located by the line it starts on."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail("not valid UTF-8", "re-encode the file as UTF-8", file=str(path),
                   line=raw.count(b"\n", 0, e.start) + 1) from None
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


def _text_blocks(path: Path) -> Iterator[tuple[int, object]]:
    # Blank-line-separated blocks (paragraphs, documents) keep memory flat for huge corpora and
    # give each row a line number; continued pre-training concatenates and windows them anyway.
    block: list[str] = []
    start = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            text = _decode(raw, path, n)
            if isinstance(text, Problem):
                yield n, text
                continue
            if text.strip():
                if not block:
                    start = n
                block.append(text.rstrip("\r\n"))
            elif block:
                yield start, {"text": "\n".join(block)}
                block = []
    if block:
        yield start, {"text": "\n".join(block)}


def _delimited(path: Path, delimiter: str) -> Iterator[tuple[int, object]]:
    """CSV/TSV decoded line by line, so one bad byte costs one line (reported with its number)
    instead of the rest of the file; a UTF-8 BOM (as Excel writes) is dropped from the header."""
    bad: list[Problem] = []

    def lines():
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                text = _decode(raw, path, n)
                if isinstance(text, Problem):
                    bad.append(text)
                    yield "\n"  # keeps csv's line count in step with the file
                else:
                    yield text.lstrip("\ufeff") if n == 1 else text

    reader = csv.reader(lines(), delimiter=delimiter)
    header = next(reader, None)
    yield from ((p.line, p) for p in bad)
    bad.clear()
    if header is None:
        return
    start = reader.line_num + 1
    for record in reader:
        line, start = start, reader.line_num + 1
        yield from ((p.line, p) for p in bad)
        bad.clear()
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            yield line, Problem(f"has {len(record)} fields, the header has {len(header)}",
                                "quote fields that contain the delimiter", file=str(path), line=line,
                                code="bad_columns")
            continue
        yield line, dict(zip(header, record))
    yield from ((p.line, p) for p in bad)


def _parquet(path: Path) -> Iterator[tuple[int, object]]:
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield n, row
