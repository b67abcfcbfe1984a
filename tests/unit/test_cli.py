"""The CLI in-process (tunesmith.cli.main) and once as the installed console script."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tunesmith import cli
from tunesmith.cli import build_parser, main
from tunesmith.config import EVAL_DTYPES, REGRESSION_THRESHOLD, describe
from tunesmith.errors import TunesmithError

COMMANDS = ("train", "validate", "config", "generate", "chat", "models")
SCRIPT = Path(sys.executable).parent / "tunesmith"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def bad_data_config(tmp_path) -> Path:
    """A config whose training file has invalid JSON on line 7 (and a model that does not exist)."""
    rows = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) for i in range(1, 7)]
    rows += ['{"instruction": "q7", "output": "a7"', json.dumps({"instruction": "q8", "output": "a8"})]
    (tmp_path / "broken.jsonl").write_text("\n".join(rows) + "\n")
    # The model is never loaded: rows are read first, so a missing model must not matter.
    return write(tmp_path / "run.yaml", f"""
        model:
          name: {tmp_path / 'no-such-model-dir'}
        data:
          train: broken.jsonl
    """)


def test_help_exits_0_and_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: tunesmith" in out
    for name in COMMANDS:
        assert name in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: tunesmith" in capsys.readouterr().err


def test_version(capsys):
    from tunesmith import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tunesmith {__version__}"


def test_validate_reports_bad_json_line_without_traceback(bad_data_config, capsys):
    rc = main(["validate", str(bad_data_config)])
    assert rc == 2
    out, err = capsys.readouterr()
    assert out.startswith("failed: 1 file, 8 rows read, 7 usable; 1 error, 0 warnings")
    assert err.splitlines()[0].endswith("broken.jsonl:7: error: not valid JSON: Expecting ',' delimiter at column 1 "
                                        "(each line of a .jsonl file must be one complete JSON object)")
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_training_refuses_the_same_rows_that_validate_names(bad_data_config):
    from tunesmith.api import train

    with pytest.raises(TunesmithError) as info:
        train(bad_data_config)
    assert [p.line for p in info.value.problems] == [7]


def test_validate_applies_overrides_before_reading_data(bad_data_config, tmp_path, capsys):
    other = tmp_path / "other.jsonl"
    other.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2"}\n')
    rc = main(["validate", str(bad_data_config), f"data.train={other}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "other.jsonl:2:" in err
    assert "broken.jsonl" not in err


def test_config_without_argument_prints_every_field(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "train.learning_rate  (float | 'auto', default 'auto')" in out
    for key, _tp, _default, help_text in describe():
        assert f"{key}  (" in out
        assert help_text in out


def test_config_prints_resolved_yaml_with_override(tmp_path, capsys):
    cfg_file = write(tmp_path / "exp.yaml", """
        data:
          train: t.jsonl
        train:
          learning_rate: 0.001
          batch_size: 4
    """)
    assert main(["config", str(cfg_file), "train.learning_rate=1e-4", "train.max_steps=7"]) == 0
    out = capsys.readouterr().out
    tree = yaml.safe_load(out)
    assert tree["train"]["learning_rate"] == pytest.approx(1e-4)
    assert tree["train"]["max_steps"] == 7
    assert tree["train"]["batch_size"] == 4       # from the file
    assert tree["train"]["epochs"] == "auto"      # a default, filled in (resolved from the data at training)
    assert tree["name"] == "exp"
    assert tree["data"]["train"] == [str((tmp_path / "t.jsonl").resolve())]
    assert "config_path" not in tree and out.startswith(f"# resolved by tunesmith from {cfg_file.resolve()}")


def test_config_unknown_key_exits_2_with_did_you_mean(tmp_path, capsys):
    cfg_file = write(tmp_path / "exp.yaml", """
        data:
          train: t.jsonl
        train:
          learning_rat: 1e-4
    """)
    assert main(["config", str(cfg_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "did you mean 'train.learning_rate'" in err
    assert f"{cfg_file}:4:" in err
    assert "Traceback" not in err


def test_validate_unknown_key_exits_2(tmp_path, capsys):
    cfg_file = write(tmp_path / "exp.yaml", "data:\n  train: t.jsonl\ntrain:\n  learning_rat: 1e-4\n")
    assert main(["validate", str(cfg_file)]) == 2
    assert "did you mean 'train.learning_rate'" in capsys.readouterr().err


def test_config_bad_override_exits_2(tmp_path, capsys):
    cfg_file = write(tmp_path / "exp.yaml", "data:\n  train: t.jsonl\n")
    assert main(["config", str(cfg_file), "train.batch_size=eight"]) == 2
    err = capsys.readouterr().err
    assert "train.batch_size" in err
    assert "'eight' is not a valid int" in err


def test_config_missing_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err


def test_console_script_help():
    assert SCRIPT.exists(), f"console script missing at {SCRIPT}"
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert name in proc.stdout
    assert "Traceback" not in proc.stderr


def test_console_script_user_error_exit_code(bad_data_config):
    proc = subprocess.run([str(SCRIPT), "validate", str(bad_data_config)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "broken.jsonl:7:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_and_config_import_no_heavy_library():
    # `tunesmith --help` and config validation must not pay for torch/transformers imports.
    code = ("import sys, tunesmith, tunesmith.cli, tunesmith.config, tunesmith.errors; "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_split_ratios_are_clear_errors(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n')
    for ratios, says in (("train=abc", "is not name=fraction"), ("../evil=0.5,test=0.5", "not a plain file name"),
                         ("train=0.5,train=0.5", "named twice")):
        assert main(["data", "split", str(data), "--ratios", ratios, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    assert not (tmp_path / "evil.jsonl").exists()


def test_config_read_problems_are_clear_errors(tmp_path, capsys):
    folder = tmp_path / "adir.yaml"
    folder.mkdir()
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: x\nname: y\ndata:\n  train: t.jsonl\n")
    binary = tmp_path / "x.bin.gz"
    binary.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")
    for path, says in ((folder, "is a folder"), (dup, "key given twice (first on line 1)"),
                       (binary, "not a UTF-8 text file")):
        assert main(["config", str(path)]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err


def test_generate_on_a_folder_that_is_neither_run_nor_model(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--prompt", "hi"]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_generate_refuses_an_encoder(capsys):
    assert main(["generate", "all-minilm-l6-v2", "--prompt", "hi"]) == 2
    assert "is an encoder" in capsys.readouterr().err


def test_training_names_data_warnings_and_goes_on(tiny_config, tmp_path, capsys):
    from tunesmith.api import train

    rows = (tmp_path / "train.jsonl").read_text().splitlines()
    warned = tmp_path / "warned.jsonl"
    warned.write_text("\n".join(rows[:3] + [""] + rows[3:]) + "\n")  # a blank line: a warning, not an error
    run_dir = train({**tiny_config, "data": {**tiny_config["data"], "train": [str(warned)]},
                     "train": {**tiny_config["train"], "max_steps": 1}})
    err = capsys.readouterr().err
    assert f"{warned}:4: warning: blank line" in err
    assert (run_dir / "adapter").is_dir()


# --------------------------------------------------------------------------- the command tables


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's sub-commands, {name: sub-parser}."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def every_command_line() -> list[list[str]]:
    """Every command and nested sub-command, as the words before --help."""
    lines = []
    for name, parser in subparsers(build_parser()).items():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        lines += [[name, sub] for sub in nested[0].choices] if nested else [[name]]
    return lines


def test_command_table_matches_the_parser():
    assert list(subparsers(build_parser())) == list(cli.COMMANDS)
    assert all(callable(add) and callable(run) for add, run in cli.COMMANDS.values())


@pytest.mark.parametrize("words", every_command_line(), ids=" ".join)
def test_every_command_help_parses(words, capsys):
    with pytest.raises(SystemExit) as info:
        main([*words, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tunesmith {' '.join(words)}")


def test_data_dispatch_table_covers_every_data_subcommand():
    data = subparsers(build_parser())["data"]
    assert set(subparsers(data)) == set(cli.DATA_COMMANDS)
    assert all(callable(run) for run in cli.DATA_COMMANDS.values())


@pytest.mark.parametrize("flag", ["--max-tokens-limit", "--max-tokens"])
def test_serve_max_tokens_limit_and_its_old_name(flag):
    args = build_parser().parse_args(["serve", "m", flag, "77"])
    assert args.max_tokens_limit == 77
    assert not hasattr(args, "max_tokens")
    assert build_parser().parse_args(["serve", "m"]).max_tokens_limit == 2048


def test_serve_passes_max_tokens_limit_to_the_server(monkeypatch):
    import tunesmith.api

    seen = {}
    monkeypatch.setattr(tunesmith.api, "serve", lambda target, **kw: seen.update(kw, target=target))
    assert main(["serve", "m", "--max-tokens", "99"]) == 0
    assert seen["target"] == "m" and seen["max_tokens_limit"] == 99


def test_eval_defaults_and_choices_come_from_the_config():
    parser = build_parser()
    for words in (["eval", "run", "--suite", "s.yaml"], ["report", "run"]):
        assert parser.parse_args(words).threshold == REGRESSION_THRESHOLD
    assert parser.parse_args(["eval", "run", "--suite", "s.yaml"]).dtype == EVAL_DTYPES[0]
    for dtype in EVAL_DTYPES:
        assert parser.parse_args(["eval", "run", "--suite", "s.yaml", "--dtype", dtype]).dtype == dtype
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "run", "--suite", "s.yaml", "--dtype", "int8"])
