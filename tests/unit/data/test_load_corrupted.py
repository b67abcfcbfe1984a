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
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert out.startswith("failed: 1 file, 20 rows read, 15 usable; 5 errors, 1 warning")
    levels = {int(x.split(":")[1]): x.split(":")[2].strip() for x in err.splitlines()}
    assert levels == {**{n: "error" for n in bad_lines if n != 13}, 13: "warning"}  # and nothing else
    assert "not valid JSON" in err and "'output' is missing" in err and "'output' is int, not text" in err
    assert "'instruction' is empty" in err and "not valid UTF-8" in err and "10.0 MB" in err


def test_skip_policy_counts_by_reason(shared_data, tmp_path, capsys):
    path = tmp_path / "alpaca_corrupted.jsonl"
    _corrupt(shared_data("alpaca/alpaca_data_rows_0000-0099.jsonl"), path)
    from tunesmith.data.load import LoadReport, load_examples

    report = LoadReport()
    rows = load_examples([str(path)], on_error="skip", report=report)
    assert len(rows) == 15 and report.rows == 20  # the 10 MB line is a warning: long, but a valid row
    assert dict(report.skipped) == {"invalid_json": 1, "missing_field": 1, "wrong_type": 1, "empty_field": 1,
                                    "invalid_utf8": 1}
    assert [(w.line, w.code) for w in report.warnings] == [(13, "long_line")]


def test_empty_file_is_reported(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: error: the file holds no rows" in err and "Traceback" not in err
