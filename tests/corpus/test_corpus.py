"""The malformed-and-tricky corpus: `tunesmith data validate` gives exactly the lines, levels and
exit code of manifest.json for every file, never a traceback (files made by generate.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.cli import main

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / "manifest.json").read_text())
DIAGNOSTIC = re.compile(r"^(?P<file>.+?)(?::(?P<line>\d+))?: (?P<level>error|warning): ")


def test_the_corpus_is_large_and_covers_every_class():
    assert len(MANIFEST) >= 300
    suffixes = {Path(name).suffix for name in MANIFEST}
    assert suffixes == {".jsonl", ".json", ".csv", ".tsv", ".txt"}
    controls = [n for n in MANIFEST if n.startswith("control_")]
    assert len(controls) >= 40 and all(MANIFEST[n]["problems"] == [] for n in controls)
    levels = {p[1] for entry in MANIFEST.values() for p in entry["problems"]}
    assert levels == {"error", "warning"}
    assert any(p[0] is None for entry in MANIFEST.values() for p in entry["problems"])  # file-level problems


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_validate_names_exact_lines_levels_and_exit_code(name, capsys):
    expected = MANIFEST[name]
    path = HERE / "files" / name
    rc = main(["data", "validate", str(path), *expected["args"], "--json"])
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    got = sorted(([p["line"], p["level"]] for p in report["problems"]), key=lambda p: (p[0] or 0, p[1] != "error"))
    assert got == expected["problems"], "\n".join(f"{p['line']}: {p['level']}: {p['problem']}"
                                                  for p in report["problems"])
    assert rc == expected["exit"]
    n_lines = path.read_bytes().count(b"\n") + (not path.read_bytes().endswith(b"\n"))
    assert all(p["line"] is None or 1 <= p["line"] <= n_lines for p in report["problems"])
    # the text output names the same places
    rc = main(["data", "validate", str(path), *expected["args"]])
    out, err = capsys.readouterr()
    lines = [DIAGNOSTIC.match(x) for x in err.splitlines()]
    assert all(lines), err
    assert sorted([[int(m["line"]) if m["line"] else None, m["level"]] for m in lines],
                  key=lambda p: (p[0] or 0, p[1] != "error")) == expected["problems"]
    assert out.startswith("ok: " if expected["exit"] == 0 else "failed: ")


def test_the_cli_exits_with_the_manifest_code_and_no_traceback():
    """A sample through a real process: exit codes and stderr as a shell user sees them."""
    names = sorted(MANIFEST)[::25]
    for name in names:
        proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "data", "validate", str(HERE / "files" / name),
                               *MANIFEST[name]["args"]], capture_output=True, text=True, timeout=120)
        assert proc.returncode == MANIFEST[name]["exit"], (name, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_generate_py_writes_exactly_the_committed_corpus(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("corpus_generate", HERE / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "OUT", tmp_path / "files")
    monkeypatch.setattr(gen, "HERE", tmp_path)
    gen.main()
    assert json.loads((tmp_path / "manifest.json").read_text()) == MANIFEST
    for name in MANIFEST:
        assert (tmp_path / "files" / name).read_bytes() == (HERE / "files" / name).read_bytes(), name
