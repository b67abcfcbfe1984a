"""The data.clean pipeline end to end on known rows, and the `data clean` / `data split` commands."""

from __future__ import annotations

import json

from tunesmith.cli import main
from tunesmith.config import CleanConfig
from tunesmith.data.curate import curate
from tunesmith.data.load import load_examples

PARA = ("The committee met on Tuesday to review the budget for the new library wing and agreed to "
        "postpone the decision until the architects deliver revised cost estimates next month.")


def _rows(write_jsonl):
    rows = [
        {"instruction": "Summarise the meeting.", "input": PARA, "output": "Budget decision postponed."},    # 1
        {"instruction": "Summarise the meeting.", "input": PARA, "output": "Budget decision postponed."},    # 2 exact
        {"instruction": "Summarise the meeting.", "input": PARA.replace("Tuesday", "Wednesday"),
         "output": "Budget decision postponed."},                                                             # 3 near
        {"instruction": "Who do I contact?", "output": "Write to jane.doe@example.com or call +44 20 7946 0958."},  # 4
        {"instruction": "Cafe\u0301 name?", "output": "Cafe\u0301   Central"},                                   # 5
        {"instruction": "x", "output": "buy buy buy buy buy buy buy buy buy buy buy buy buy buy"},           # 6
    ]
    return write_jsonl("d.jsonl", rows)


def test_pipeline_drops_and_reports_each_row_with_its_line(write_jsonl):
    path = _rows(write_jsonl)
    examples = load_examples([str(path)])
    c = CleanConfig(enabled=True, dedup="near", near_threshold=0.7, pii="redact", max_repetition=0.5)
    kept, report = curate(examples, c)
    assert [e.line for e in kept] == [1, 4, 5]
    assert report["dropped"] == {"duplicate": 2, "quality:repetitive": 1}
    assert report["dropped_rows"]["quality:repetitive"] == [f"{path}:6 (repetitive)"]
    dups = report["dropped_rows"]["duplicate"]
    assert dups[0].startswith(f"{path}:2 (exact of {path}:1") and dups[1].startswith(f"{path}:3 (near")
    # PII redacted in place, counts per type
    assert kept[1].messages[-1]["content"] == "Write to [EMAIL] or call [PHONE]."
    pii = next(s for s in report["steps"] if s["step"] == "pii")
    assert pii["found"] == {"email": 1, "phone": 1} and pii["rows_with_pii"] == 1
    # NFC + whitespace: one code point for é, single spaces
    assert kept[2].messages[-1]["content"] == "Caf\u00e9 Central"
    assert report["before"]["rows"] == 6 and report["after"]["rows"] == 3
    assert report["before"]["sha256"] != report["after"]["sha256"]


def test_pii_drop_and_report_policies(write_jsonl):
    examples = load_examples([str(_rows(write_jsonl))])
    kept, report = curate(examples, CleanConfig(pii="drop", dedup="none"))
    assert 4 not in [e.line for e in kept] and report["dropped"]["pii"] == 1
    kept, report = curate(examples, CleanConfig(pii="report", dedup="none"))
    assert len(kept) == 6 and "jane.doe@example.com" in kept[3].messages[-1]["content"]


def test_decontamination_against_a_real_eval_set(shared_data, write_jsonl):
    gsm = [json.loads(x) for x in shared_data("gsm8k/train_rows_0000-0499.jsonl").read_text().splitlines()[:5]]
    eval_path = write_jsonl("eval.jsonl", [{"instruction": r["question"], "output": r["answer"]} for r in gsm])
    train = [{"instruction": "Solve this.", "input": gsm[2]["question"], "output": "42"},
             {"instruction": "Write a haiku about autumn.", "output": "Leaves fall slowly down"}]
    examples = load_examples([str(write_jsonl("train.jsonl", train))])
    kept, report = curate(examples, CleanConfig(dedup="none", pii="off", decontaminate=[str(eval_path)]))
    assert [e.line for e in kept] == [2]
    step = next(s for s in report["steps"] if s["step"] == "decontaminate")
    assert list(step["contaminated"].values()) == [[f"{eval_path}:3"]]


def test_data_clean_command_writes_rows_report_and_manifest(write_jsonl, tmp_path, capsys):
    path = _rows(write_jsonl)
    out = tmp_path / "out"
    assert main(["data", "clean", str(path), "data.clean.pii=redact", "--out", str(out)]) == 0
    rows = [json.loads(x) for x in (out / "clean.jsonl").read_text().splitlines()]
    assert len(rows) == 5  # exact duplicate dropped; near dedup is off by default
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_before"] == 6 and manifest["rows_after"] == 5
    assert len(manifest["inputs"][0]["sha256"]) == 64 and len(manifest["output"]["sha256"]) == 64
    assert load_examples([str(out / "clean.jsonl")])  # the cleaned file reads back


def test_data_split_command_grouped_has_no_leakage(write_jsonl, tmp_path, capsys):
    rows = [{"text": f"turn {i}", "label": i % 2, "conversation": f"c{i // 3}"} for i in range(60)]
    path = write_jsonl("rows.jsonl", rows)
    out = tmp_path / "split"
    assert main(["data", "split", str(path), "--method", "grouped", "--key", "conversation",
                 "--ratios", "train=0.8,test=0.2", "--out", str(out)]) == 0
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (out / "test.jsonl").read_text().splitlines()]
    assert len(train) + len(test) == 60
    assert not {r["conversation"] for r in train} & {r["conversation"] for r in test}
    assert json.loads((out / "split_report.json").read_text())["leakage"] == {}


def test_preview_highlights_exactly_the_trained_tokens(tmp_path, capsys, smollm2_dir):
    out = tmp_path / "p.html"
    persona = __import__("pathlib").Path(__file__).resolve().parents[3] / "examples" / "chat" / "persona.jsonl"
    assert main(["data", "preview", str(persona), "-n", "1", "--html", str(out)]) == 0
    page = out.read_text()
    assert '<span class="t">Clear skies and a steady westerly, perfect for sailing. Arr!&lt;|im_end|&gt;</span>' in page
    assert "\033[1;32mClear skies" in capsys.readouterr().out


def test_weighted_mix_resamples_each_source_to_its_share(write_jsonl):
    from tunesmith.config import load_config
    from tunesmith.data.prepare import load_all

    a = write_jsonl("a.jsonl", [{"instruction": f"a{i}", "output": "x"} for i in range(30)])
    b = write_jsonl("b.csv", [])
    b.write_text("instruction,output\n" + "".join(f"b{i},y\n" for i in range(10)))
    cfg = load_config({"data": {"sources": [{"path": str(a), "weight": 1.0}, {"path": str(b), "weight": 3.0}]}})
    loaded = load_all(cfg.data, seed=3)
    examples = loaded.train
    assert len(examples) == 40
    from_b = [e for e in examples if e.file == str(b)]
    assert len(from_b) == 30 and len(set(e.line for e in from_b)) == 10  # upsampled: every row 3 times
    assert [m["used"] for m in loaded.info["train"]["mix"]] == [10, 30]
    again = load_all(cfg.data, seed=3).train
    assert [(e.file, e.line) for e in again] == [(e.file, e.line) for e in examples]  # deterministic


def test_mixing_comes_after_dedup_and_after_the_validation_split(write_jsonl):
    from tunesmith.config import load_config
    from tunesmith.data.prepare import load_all

    big = write_jsonl("big.jsonl", [{"instruction": f"x{i}", "output": "o"} for i in range(10)])
    small = write_jsonl("small.jsonl", [{"instruction": f"y{i}", "output": "o"} for i in range(4)])
    cfg = load_config({"data": {"sources": [{"path": str(big)}, {"path": str(small)}],
                                "validation_fraction": 0.25, "clean": {"enabled": True}}})
    loaded = load_all(cfg.data, seed=0)
    val = {(e.file, e.line) for e in loaded.validation}
    assert len(val) == 4 and not val & {(e.file, e.line) for e in loaded.train}  # no row in both splits
    counts = {name: sum(e.file == str(p) for e in loaded.train) for name, p in (("big", big), ("small", small))}
    assert counts["big"] == counts["small"] == 5  # equal weights survive dedup (which ran before mixing)


def test_a_missing_file_is_fatal_even_when_skipping_bad_rows(write_jsonl, tmp_path):
    import pytest

    from tunesmith.config import load_config
    from tunesmith.data.prepare import load_all
    from tunesmith.errors import TunesmithError

    good = write_jsonl("good.jsonl", [{"instruction": "a", "output": "b"}])
    cfg = load_config({"data": {"train": [str(good), str(tmp_path / "typo.jsonl")], "on_error": "skip"}})
    with pytest.raises(TunesmithError, match="file not found"):
        load_all(cfg.data, seed=0)


def test_data_augment_command_labels_caps_and_reports(tmp_path, capsys):
    from pathlib import Path

    train = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "train.jsonl"
    out = tmp_path / "aug"
    assert main(["data", "augment", str(train), "--methods", "typos,drop_articles", "--fraction", "0.5",
                 "--max-fraction", "0.2", "--out", str(out)]) == 0
    rows = [json.loads(x) for x in (out / "augmented.jsonl").read_text().splitlines()]
    synthetic = [r for r in rows if r.get("synthetic")]
    assert len(rows) - len(synthetic) == 320
    assert 0 < len(synthetic) <= 80 and len(synthetic) / len(rows) <= 0.2  # 20% cap of the final set
    report = json.loads((out / "augment_report.json").read_text())["finalize"]
    assert report["kept"] == len(synthetic) and report["generated"] >= report["kept"]
    assert json.loads((out / "manifest.json").read_text())["output"]["rows"] == len(rows)


def test_data_synth_writes_labelled_rows_and_a_report(tmp_path, tiny_model_dir, shared_data):
    from tunesmith.api import data_synth

    out = data_synth(shared_data("alpaca/seed_tasks.jsonl"), n=2, model=str(tiny_model_dir), max_new_tokens=8,
                     out=tmp_path / "syn")
    report = json.loads((out / "synth_report.json").read_text())
    assert report["finalize"]["generated"] >= report["finalize"]["kept"]
    rows = [json.loads(x) for x in (out / "synthetic.jsonl").read_text().splitlines()]
    assert all(r["synthetic"] is True for r in rows) and len(rows) == report["finalize"]["kept"]
