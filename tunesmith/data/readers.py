"""Read data files row by row, with the physical line each record starts on, and never a traceback.

Every reader yields `(line, row)` where `row` is the parsed record, or an error `Problem` in place
of a record that could not be read. Warnings (a blank line, a very long line) go to the caller's
`warnings` list and the row is still read. `line` is None for problems of the whole file (a
UTF-16 file, a .json file that is not an array). Lines are counted by '\\n' only: CRLF counts
once, and U+2028/U+2029/U+0085, form feed or vertical tab inside a line start no new line
(`str.splitlines()` would split on all of them), so the numbers match every editor's.

  .jsonl          one JSON object per line
  .json           one array of objects, or objects one after another (as `datasets` accepts);
                  each record is named by the line it starts on
  .txt            raw text; each block of lines separated by a blank line is one {"text": ...} row
  .csv / .tsv     a header row, then one record per row (quoted fields may span lines)
  .parquet        row groups streamed in batches through pyarrow; "line" is the 1-based row number

JSON is read more strictly than Python's `json` does, because what it lets through breaks training
later or silently changes the data: NaN/Infinity literals (not JSON), a key twice in one object
(Python keeps the last: in a chat message that changes the role), integers past Python's 4,300-digit
limit (a ValueError, not a JSONDecodeError), nesting deeper than MAX_DEPTH (a RecursionError) and
lone UTF-16 surrogate escapes such as "\\ud83d" (valid JSON, but no tokenizer can encode them).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from tunesmith.errors import Problem, fail

SUFFIXES = (".jsonl", ".json", ".txt", ".csv", ".tsv", ".parquet")
DEFAULT_MAX_ROW_BYTES = 1_000_000  # a longer line is a warning (data.max_row_bytes), never an error by itself
MAX_DEPTH = 100  # no fine-tuning record nests this deep; past ~1,000 levels Python's json raises RecursionError
MAX_INT_DIGITS = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # the only way a lone surrogate gets into decoded JSON
_SURROGATE = re.compile("[\ud800-\udfff]")
_WS = " \t\r\n"

csv.field_size_limit(2**31 - 1)  # the default 128 KB raises csv.Error mid-file; long lines warn instead


def iter_rows(path: str | Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
              warnings: list[Problem] | None = None) -> Iterator[tuple[int | None, object]]:
    """Yield (line, row or error Problem) from any supported file; warnings go to `warnings`."""
    path = Path(path)
    if not path.is_file():
        raise fail("data file not found", "check the path in data.train / data.validation", file=str(path))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise fail(f"unsupported file type '{path.suffix}'", f"use one of {', '.join(SUFFIXES)}", file=str(path))
    warnings = warnings if warnings is not None else []
    try:
        if suffix != ".parquet":
            with open(path, "rb") as f:
                head = f.read(4)
            if head[:2] in (b"\xff\xfe", b"\xfe\xff"):  # checked first: UTF-16 would fail on every line
                yield None, Problem("the file is UTF-16 encoded (it starts with a UTF-16 byte-order mark)",
                                    "save it as UTF-8", file=str(path), code="invalid_utf8")
                return
        if suffix == ".jsonl":
            yield from _jsonl(path, max_row_bytes, warnings)
        elif suffix == ".json":
            yield from _json_file(path, max_row_bytes, warnings)
        elif suffix == ".txt":
            yield from _text_blocks(path, max_row_bytes, warnings)
        elif suffix in (".csv", ".tsv"):
            yield from _delimited(path, "\t" if suffix == ".tsv" else ",", max_row_bytes, warnings)
        else:
            yield from _parquet(path)
    except OSError as e:  # unreadable (permissions, a folder named like a file, a disk error)
        raise fail(f"cannot read the file: {e.strerror or e}", "check the file's permissions", file=str(path)) from None


def _at(path: Path, line: int | None, problem: str, fix: str, code: str, field: str | None = None,
        level: str = "error") -> Problem:
    return Problem(problem, fix, file=str(path), line=line, field=field, code=code, level=level)


def _decode(raw: bytes, path: Path, n: int) -> str | Problem:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _at(path, n, f"not valid UTF-8 (byte {e.start + 1} of the line)", "re-encode the file as UTF-8",
                   "invalid_utf8")


def _line_checks(raw: bytes, path: Path, n: int, max_row_bytes: int, warnings: list) -> str | Problem:
    """Decode one physical line; a BOM after the file's start is an error, a long line a warning."""
    if n == 1 and raw.startswith(BOM):
        raw = raw[3:]  # Excel, Notepad and PowerShell write one; it is not data
    if len(raw) > max_row_bytes:
        warnings.append(_at(path, n, f"line is {len(raw) / 1e6:.1f} MB, over the {max_row_bytes / 1e6:.1f} MB "
                            "warning limit", "check the record is what you meant, or raise data.max_row_bytes",
                            "long_line", level="warning"))
    text = _decode(raw, path, n)
    if isinstance(text, str) and text.startswith("\ufeff"):
        # Inside a string U+FEFF is text (a zero-width no-break space, common in copied web text);
        # at the start of a later line it is the BOM of a file joined on with `cat`.
        return _bom(path, n)
    return text


def _bom(path: Path, n: int) -> Problem:
    return _at(path, n, "a byte-order mark (U+FEFF) inside the file, not at its start",
               "remove it: files joined with `cat` carry one at the start of each part", "bom")


class StrictJSON:
    """`json` plus the checks it skips (see the module docstring). The hooks note a problem and let
    parsing go on, so that a record in a .json array can be reported and the next one still read."""

    def __init__(self):
        self.issues: list[tuple[str, str, str | None, str]] = []  # (problem, fix, field, code)
        self._decoder = json.JSONDecoder(object_pairs_hook=self._object, parse_constant=self._constant,
                                         parse_int=self._int)

    def _object(self, pairs: list) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set = set()
            dup = next(k for k, _ in pairs if k in seen or seen.add(k))
            self.issues.append((f"the key {dup!r} appears twice in one object",
                                "keep one of them: JSON readers silently keep only the last", dup, "duplicate_key"))
        return obj

    def _constant(self, name: str) -> None:
        self.issues.append((f"{name} is not valid JSON", "write null or a number: JSON has no NaN or Infinity",
                            None, "invalid_json"))

    def _int(self, digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            self.issues.append((f"an integer literal with {len(digits.lstrip('-'))} digits, over the "
                                f"{MAX_INT_DIGITS}-digit limit", "write it as a string if it is an identifier",
                                None, "invalid_number"))
            return 0
        return int(digits)

    def raw_decode(self, text: str, pos: int) -> tuple[object, int]:
        self.issues.clear()
        return self._decoder.raw_decode(text, pos)


def _too_deep(path: Path, line: int | None) -> Problem:
    return _at(path, line, f"JSON nested more than {MAX_DEPTH} levels deep", "flatten the record", "too_deep")


def _check_value(value: object, span: str, parser: StrictJSON, path: Path, line: int | None) -> object:
    """The record, or an error Problem for what the parser noted or the structure holds."""
    if parser.issues:
        problem, fix, field, code = parser.issues[0]
        more = f" (and {len(parser.issues) - 1} more such problems)" if len(parser.issues) > 1 else ""
        return _at(path, line, problem + more, fix, code, field)
    deep = span.count("[") + span.count("{") > MAX_DEPTH
    lone = _SURROGATE_ESCAPE.search(span) if "\\u" in span else None
    if deep or lone:
        # Iterative walk: a recursive one would hit the recursion limit on the very rows it checks.
        stack = [(value, "", 0)]
        while stack:
            v, where, depth = stack.pop()
            if depth > MAX_DEPTH:
                return _too_deep(path, line)
            if isinstance(v, str):
                if lone and _SURROGATE.search(v):
                    return _lone_surrogate(path, line, where, v)
            elif isinstance(v, dict):
                for k, x in reversed(v.items()):
                    if lone and _SURROGATE.search(k):
                        return _lone_surrogate(path, line, where, k)
                    stack.append((x, f"{where}.{k}" if where else k, depth + 1))
            elif isinstance(v, list):
                stack.extend((x, f"{where}[{i}]", depth + 1) for i, x in reversed(list(enumerate(v))))
    return value


def _lone_surrogate(path: Path, line: int | None, where: str, text: str) -> Problem:
    code = _SURROGATE.search(text).group()
    return _at(path, line, f"text holds a lone UTF-16 surrogate \\u{ord(code):04x} (half of a character, e.g. an "
               "emoji cut in two)", "write the whole character, or its full surrogate pair", "lone_surrogate",
               field=_printable(where) or None)


def _printable(text: str) -> str:
    """A field path safe to print (keys can hold anything, a lone surrogate included)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _parse_line(parser: StrictJSON, text: str, start: int, path: Path, n: int) -> object:
    try:
        value, end = parser.raw_decode(text, start)
    except json.JSONDecodeError as e:
        if e.pos < len(text) and text[e.pos] == "\ufeff":
            return _bom(path, n)
        return _at(path, n, f"not valid JSON: {e.msg} at column {e.colno}",
                   "each line of a .jsonl file must be one complete JSON object", "invalid_json")
    except RecursionError:
        return _too_deep(path, n)
    if text[end:].strip(_WS):
        return _at(path, n, f"not valid JSON: extra data after the object at column {end + 1}",
                   "put one JSON object per line", "invalid_json")
    return _check_value(value, text, parser, path, n)


def _jsonl(path: Path, max_row_bytes: int, warnings: list) -> Iterator[tuple[int, object]]:
    parser = StrictJSON()
    with open(path, "rb") as f:  # bytes, split on b"\n" only, so one bad line cannot stop the file
        for n, raw in enumerate(f, start=1):
            text = _line_checks(raw, path, n, max_row_bytes, warnings)
            if isinstance(text, Problem):
                yield n, text
                continue
            body = text.lstrip(_WS)
            if body:
                yield n, _parse_line(parser, text, len(text) - len(body), path, n)
            elif text:  # (a file holding only a BOM has nothing on this line at all)
                warnings.append(_at(path, n, "blank line", "remove it: a .jsonl file holds one object per line",
                                    "blank_line", level="warning"))


class _Lines:
    """Line numbers of positions in a text, counted forward (positions only grow): linear, not quadratic."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def __call__(self, pos: int) -> int:
        pos = min(pos, len(self.text))
        if pos == len(self.text) and self.text.endswith("\n"):
            pos -= 1  # the end of the file is on its last line, not on a line after it
        if pos < self.pos:
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _json_file(path: Path, max_row_bytes: int, warnings: list) -> Iterator[tuple[int | None, object]]:
    """A .json file: one array of records, or records one after another; each located by its first line.
    A syntax error ends the file (no resynchronising inside JSON), reported at its own line."""
    raw = path.read_bytes()
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        yield raw.count(b"\n", 0, e.start) + 1, _at(path, raw.count(b"\n", 0, e.start) + 1, "not valid UTF-8",
                                                     "re-encode the file as UTF-8", "invalid_utf8")
        return
    line_of, parser = _Lines(text), StrictJSON()

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        return pos

    def broken(pos: int, what: str, fix: str = "fix the JSON syntax, or use .jsonl with one row per line"):
        if pos < len(text) and text[pos] == "\ufeff":
            what, fix = "a byte-order mark (U+FEFF) inside the file", "remove it: joined files carry one each"
        return line_of(pos), _at(path, line_of(pos), f"not valid JSON: {what}", fix,
                                 "bom" if "U+FEFF" in what else "invalid_json")

    pos = skip(0)
    if pos >= len(text):
        return  # empty: reported by the caller as a file with no rows
    array = text[pos] == "["
    if not array and text[pos] != "{":
        yield None, _at(path, None, "a .json data file must hold one array of rows, or objects one after another",
                        "wrap the rows in [...], or use .jsonl", "invalid_json")
        return
    pos = skip(pos + 1) if array else pos
    if array and pos < len(text) and text[pos] == "]":
        pos += 1  # []: no rows
    else:
        while pos < len(text):
            line = line_of(pos)
            try:
                value, end = parser.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                yield broken(e.pos, e.msg)
                return
            except RecursionError:
                yield line, _too_deep(path, line)
                return
            span = text[pos:end]
            if len(span) > max_row_bytes // 4 and len(span.encode("utf-8", "surrogatepass")) > max_row_bytes:
                warnings.append(_at(path, line, f"record is {len(span.encode('utf-8', 'surrogatepass')) / 1e6:.1f} "
                                    f"MB, over the {max_row_bytes / 1e6:.1f} MB warning limit",
                                    "check the record is what you meant, or raise data.max_row_bytes",
                                    "long_line", level="warning"))
            yield line, _check_value(value, span, parser, path, line)
            pos = skip(end)
            if not array:
                continue
            if pos >= len(text):
                yield broken(pos, "the array is not closed with ']' (is the file cut off?)")
                return
            if text[pos] == "]":
                pos += 1
                break
            if text[pos] != ",":
                yield broken(pos, "expected ',' or ']' after a row")
                return
            pos = skip(pos + 1)
            if pos < len(text) and text[pos] == "]":
                yield broken(pos, "a ',' before the closing ']'", "remove the trailing comma")
                return
    if skip(pos) < len(text):
        yield broken(skip(pos), "text after the closing ']'")


def _text_blocks(path: Path, max_row_bytes: int, warnings: list) -> Iterator[tuple[int, object]]:
    # Blank-line-separated blocks (paragraphs, documents) keep memory flat for huge corpora and
    # give each row a line number; continued pre-training concatenates and windows them anyway.
    block: list[str] = []
    start = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            text = _line_checks(raw, path, n, max_row_bytes, warnings)
            if isinstance(text, str) and "\x00" in text:
                text = _at(path, n, "a NUL byte in the text: is this a binary file?", "remove it", "nul_byte")
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


def read_header(path: str | Path) -> list[str] | None:
    """The header names of a .csv/.tsv file (stripped), or None for a file with no header line."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, "rb") as f:
        first = f.readline()
    if first.startswith(BOM):
        first = first[3:]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        return None  # reported by the reader with its line
    if not text.strip():
        return None
    try:
        return [h.strip() for h in next(csv.reader([text], delimiter=delimiter), [])]
    except csv.Error:
        return None  # a multi-line quoted header: the reader reports it


def _delimited(path: Path, delimiter: str, max_row_bytes: int, warnings: list) -> Iterator[tuple[int, object]]:
    """CSV/TSV decoded line by line, so one bad byte costs one line (reported with its number)
    instead of the rest of the file; a UTF-8 BOM (as Excel writes) is dropped from the header."""
    bad: list[Problem] = []
    bad_lines: set[int] = set()

    def lines():
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                text = _line_checks(raw, path, n, max_row_bytes, warnings)
                if isinstance(text, Problem):
                    bad.append(text)
                    bad_lines.add(n)
                    yield "\n"  # keeps csv's line count in step with the file
                else:
                    yield text

    def flush():
        yield from ((p.line, p) for p in bad)
        bad.clear()

    # strict: a quote left open at the end of the file is an error, not a field that silently
    # swallows every line after it
    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        yield 1, _at(path, 1, f"the header line is not valid CSV: {e}", "fix the header's quotes", "bad_header")
        return
    yield from flush()
    if header is None:
        return
    if not any(h.strip() for h in header):
        try:
            more = next(reader, None) is not None
        except csv.Error:
            more = True
        if 1 not in bad_lines and more:
            yield 1, _at(path, 1, "the first line is blank; it must be the header", "put the header on line 1",
                         "bad_header")
        return
    header = [h.strip() for h in header]
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        yield 1, _at(path, 1, f"the header names {', '.join(map(repr, dups))} more than once",
                     "give every column its own name", "bad_header")
        return
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            what = ("a quoted field opened here is never closed" if "end of data" in str(e)
                    else f"not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {e}")
            yield from flush()
            yield start, _at(path, start, what, "balance the quotes; a quote inside a quoted field is written \"\"",
                             "bad_columns")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        yield from flush()
        if not any(cell.strip() for cell in record):
            if line in bad_lines:
                continue  # an unreadable line, reported as such
            warnings.append(_at(path, line, "blank row", "remove it", "blank_line", level="warning"))
            continue
        if len(record) != len(header):
            spans = f" (the record runs to line {start - 1}: is a quote unbalanced?)" if start - 1 > line else ""
            yield line, _at(path, line, f"has {len(record)} fields, the header has {len(header)}{spans}",
                            "quote fields that contain the delimiter", "bad_columns")
            continue
        nul = [h for h, cell in zip(header, record) if "\x00" in cell]
        if nul:
            yield line, _at(path, line, "a NUL byte in the field", "remove it: NUL bytes mean binary or UTF-16 "
                            "data", "nul_byte", field=nul[0])
            continue
        yield line, dict(zip(header, record))
    yield from flush()


def _parquet(path: Path) -> Iterator[tuple[int | None, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except (pa.ArrowException, OSError, ValueError) as e:
        yield (n + 1 if n else None), _at(path, n + 1 if n else None, f"cannot read the parquet file: {e}",
                                          "check that it is a complete parquet file", "invalid_parquet")
