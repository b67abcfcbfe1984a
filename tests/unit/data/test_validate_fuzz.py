"""Property-based fuzzing of the data validator with hypothesis.

Valid files of every format are mutated at the byte level (bytes inserted, deleted, replaced;
BOMs, NULs, CRs, U+2028, surrogate escapes, NaN, brackets and quotes spliced in) and at the token
level (JSON values swapped for other types, keys dropped or doubled, nesting deepened). Whatever
comes out, `tunesmith data validate` must exit 0 or 2, never raise, and name only lines that exist;
and a file it passes must load and go through the real chat template and tokenizer without error.

CI runs a bounded, derandomized number of examples; `make fuzz` runs many more
(TUNESMITH_FUZZ_EXAMPLES, random seeds).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.cli import main

EXAMPLES = int(os.environ.get("TUNESMITH_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="TUNESMITH_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture], database=None)
WORK = Path(tempfile.mkdtemp(prefix="tunesmith-fuzz-"))

ROWS = {
    "alpaca": [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
               {"instruction": "Add 2 and 3.", "output": "5", "system": "Be brief."}],
    "chat": [{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi 😀"},
                           {"role": "assistant", "content": "Hello!"}]},
             {"messages": [{"role": "user", "content": "Weather?"},
                           {"role": "assistant", "content": None, "tool_calls": [
                               {"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                           {"role": "tool", "tool_call_id": "1", "content": "sunny"},
                           {"role": "assistant", "content": "Sunny."}]}],
    "sharegpt": [{"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}],
    "preference": [{"prompt": "Pick one.", "chosen": "This one.", "rejected": "No."}],
    "kto": [{"prompt": "Say hi.", "completion": "Hi!", "label": True}],
    "classification": [{"text": "great film", "label": "positive"}, {"text": "dull", "label": "negative"}],
}
SPLICE = [b"\xef\xbb\xbf", b"\x00", b"\r", b"\n", b"\r\n", "\u2028".encode(), b"\\ud83d", b"\\ude00", b"NaN",
          b"Infinity", b"[[[[", b"]]", b"{", b"}", b'"', b",", b"\t", b"\xff", b"\xed\xa0\xbd", b"1" * 5000,
          b"[" * 3000, b'"role": "user", "role"', b"\\u0000", b"  ", b'""']


def _serialise(rows: list, suffix: str) -> bytes:
    if suffix == ".jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if suffix == ".json":
        return json.dumps(rows, ensure_ascii=False, indent=2).encode()
    sep = "\t" if suffix == ".tsv" else ","
    lines = ["text" + sep + "label"] + [
        f'"{str(r.get("text", "")).replace(chr(34), chr(34) * 2)}"{sep}{r.get("label", "")}' for r in rows]
    return ("\n".join(lines) + "\n").encode()


@st.composite
def json_values(draw):
    return draw(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                             lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                             max_leaves=6))


@st.composite
def token_mutated_rows(draw, fmt):
    """Valid rows with some values replaced, keys dropped, or rows swapped for other JSON values."""
    rows = [json.loads(json.dumps(r)) for r in draw(st.lists(st.sampled_from(ROWS[fmt]), min_size=1, max_size=5))]
    for row in rows:
        action = draw(st.sampled_from(["keep", "replace", "drop", "add", "nest"]))
        target = row
        path = []
        while isinstance(target, (dict, list)) and target and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
            path.append((target, key))
            target = target[key]
        if not path:
            continue
        parent, key = path[-1]
        if action == "replace":
            parent[key] = draw(json_values())
        elif action == "drop" and isinstance(parent, dict):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values())
        elif action == "nest":
            parent[key] = [[[parent[key]]]]
    if draw(st.booleans()):
        rows.insert(draw(st.integers(0, len(rows))), draw(json_values()))
    return rows


@st.composite
def byte_mutated(draw, data: bytes):
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "splice"]))
        if op == "insert":
            data = data[:pos] + draw(st.binary(min_size=1, max_size=4)) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 8)):]
        elif op == "replace" and pos < len(data):
            data = data[:pos] + draw(st.binary(min_size=1, max_size=1)) + data[pos + 1:]
        else:
            data = data[:pos] + draw(st.sampled_from(SPLICE)) + data[pos:]
    return data


@st.composite
def fuzzed_files(draw):
    fmt = draw(st.sampled_from(sorted(ROWS)))
    suffix = draw(st.sampled_from([".csv", ".tsv"] if fmt == "classification" and draw(st.booleans())
                                  else [".jsonl", ".json"]))
    rows = draw(token_mutated_rows(fmt)) if suffix in (".jsonl", ".json") else [
        json.loads(json.dumps(r)) for r in draw(st.lists(st.sampled_from(ROWS[fmt]), min_size=1, max_size=5))]
    data = _serialise(rows, suffix)
    if draw(st.booleans()):
        data = draw(byte_mutated(data))
    return suffix, data


def _check(suffix: str, data: bytes, capsys, tokenizer) -> None:
    path = WORK / f"f{suffix}"
    path.write_bytes(data)
    rc = main(["data", "validate", str(path), "--json"])
    out, err = capsys.readouterr()
    assert rc in (0, 2), err
    report = json.loads(out)
    n_lines = data.count(b"\n") + (not data.endswith(b"\n"))
    for p in report["problems"]:
        assert p["line"] is None or 1 <= p["line"] <= n_lines, p
        assert p["level"] in ("error", "warning")
    assert (rc == 0) == (report["errors"] == 0)
    if rc == 0:  # a file that validates never crashes later: load it and tokenize it for real
        from dataclasses import replace

        from tunesmith.data.inspect import conversation_view
        from tunesmith.data.load import load_examples
        from tunesmith.data.templates import tokenize_examples

        examples = load_examples([str(path)])
        assert len(examples) == report["kept"]
        chats = [replace(e, messages=conversation_view(e)) for e in examples]
        chats = [e for e in chats if e.messages is not None]
        tokenize_examples(tokenizer, chats, 512, "truncate", "assistant")
        for e in examples:
            if e.kind == "classification":
                tokenizer(e.extra["text"])
    rc = main(["data", "validate", str(path)])
    _, err = capsys.readouterr()
    assert rc in (0, 2) and "Traceback" not in err


@FUZZ
@given(fuzzed_files())
def test_validator_never_crashes_and_names_only_real_lines(tokenizer, capsys, file):
    _check(*file, capsys, tokenizer)


@FUZZ
@given(st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt"]), st.binary(max_size=300))
def test_validator_survives_arbitrary_bytes(tokenizer, capsys, suffix, data):
    _check(suffix, data, capsys, tokenizer)


@pytest.mark.parametrize("name", ["with_bom", "crlf"])
def test_controls_stay_clean_under_the_fuzz_harness(tokenizer, capsys, name):
    data = _serialise(ROWS["chat"] * 3, ".jsonl")
    data = b"\xef\xbb\xbf" + data if name == "with_bom" else data.replace(b"\n", b"\r\n")
    path = WORK / "control.jsonl"
    path.write_bytes(data)
    assert main(["data", "validate", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["kept"] == 6
