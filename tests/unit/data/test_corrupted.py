"""A corrupted copy of a real shared file: every problem is reported with its line, no traceback."""

from __future__ import annotations

import json

from tunesmith.cli import main


def _corrupt(src, dst):
    lines = src.read_bytes().splitlines()[:20]
    rows = [json.loads(x) for x in lines]
    bad = {
        3: b'{"instruction": "Give three tips", "output": "ok"',                     # invalid JSON
        5: json.dumps({k: v for k, v in rows[4].items() if k != "output"}).encode(),   # missing field
        7: json.dumps({**rows[6], "output": 5}).encode(),                              # wrong type
        9: json.dumps({**rows[8], "instruction": "   "}).encode(),                     # empty string
        11: b'{"instruction": "caf\xe9", "output": "x"}',                              # invalid UTF-8 (latin-1)
        13: json.dumps({**rows[12], "output": "x" * 10_000_000}).encode(),             # a 10 MB line
    }
    dst.write_bytes(b"\n".join(bad.get(i + 1, line) for i, line in enumerate(lines)) + b"\n")
    return sorted(bad)


def test_every_problem_is_reported_with_its_line_and_no_traceback(shared_data, tmp_path, capsys):
    path = tmp_path / "alpaca_corrupted.jsonl"
    bad_lines = _corrupt(shared_data("alpaca/alpaca_data_rows_0000-0099.jsonl"), path)
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: 6 bad rows in the data:")
    for line in bad_lines:
        assert f"{path}:{line}:" in err, f"line {line} not reported"
    assert "not valid JSON" in err and "'output' is missing" in err and "'output' is int, not text" in err
    assert "'instruction' is empty" in err and "not valid UTF-8" in err and "10.0 MB" in err
    reported = [int(x.split(":")[1]) for x in err.splitlines()[1:]]
    assert reported == bad_lines  # and nothing else


def test_skip_policy_counts_by_reason(shared_data, tmp_path, capsys):
    path = tmp_path / "alpaca_corrupted.jsonl"
    _corrupt(shared_data("alpaca/alpaca_data_rows_0000-0099.jsonl"), path)
    from tunesmith.data.formats import LoadReport, load_examples

    report = LoadReport()
    rows = load_examples([str(path)], on_error="skip", report=report)
    assert len(rows) == 14 and report.rows == 20
    assert dict(report.skipped) == {"invalid_json": 1, "missing_field": 1, "wrong_type": 1, "empty_field": 1,
                                    "invalid_utf8": 1, "too_large": 1}


def test_empty_file_is_reported(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: the file holds no rows" in err and "Traceback" not in err
