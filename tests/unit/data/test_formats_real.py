"""Every supported format loads from a real sample in ../shared/data (or a conversion of one)."""

from __future__ import annotations

import csv
import json

import pytest

from tunesmith.data.load import LoadReport, load_examples
from tunesmith.errors import TunesmithError


def load(path, **kw):
    report = LoadReport()
    rows = load_examples([str(path)], report=report, **kw)
    return rows, report


def test_sharegpt_chats_with_system_turns(shared_data):
    rows, _ = load(shared_data("sharegpt/fastchat_dummy_conversation.jsonl"))
    assert len(rows) == 500 and all(r.kind == "chat" for r in rows)
    assert rows[0].messages[0]["role"] == "user" and rows[0].messages[1]["role"] == "assistant"
    tiny, _ = load(shared_data("sharegpt/torchtune_chat_tiny.jsonl"))
    assert tiny[0].messages[0]["role"] == "system"


def test_sharegpt_tool_calls_map_to_assistant_and_tool_roles(shared_data):
    rows, _ = load(shared_data("sharegpt/glaive_toolcall_en_demo.jsonl"))
    assert len(rows) == 300
    roles = {m["role"] for r in rows for m in r.messages}
    assert roles == {"user", "assistant", "tool"}
    assert any("tools" in r.extra for r in rows)


def test_openai_chat_with_tool_calls(write_jsonl):
    row = {"messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"},
        {"role": "assistant", "content": "It is 3 degrees in Oslo."}]}
    rows, _ = load(write_jsonl("chat.jsonl", [row]))
    assert rows[0].messages[2]["tool_calls"][0]["function"]["name"] == "weather"
    assert rows[0].messages[3] == {"role": "tool", "content": "{\"temp\": 3}", "tool_call_id": "c1"}


def test_hh_rlhf_transcripts_become_prompt_chosen_rejected(shared_data):
    # 4 real rows have an empty chosen reply ("...\n\nAssistant: " and nothing after): skipped, counted.
    rows, report = load(shared_data("hh_rlhf/harmless-base_test_shared.jsonl"), on_error="skip")
    assert len(rows) == 1197 and all(r.kind == "preference" for r in rows)
    assert dict(report.skipped) == {"empty_field": 4}
    assert [p.line for p in report.problems] == [87, 517, 926, 1104]
    first = rows[0]
    assert first.messages[0] == {"role": "user", "content": "what are some pranks with a pen i can do?"}
    assert first.messages[-1]["role"] == "user"  # the prompt ends on the human's turn
    assert first.extra["chosen"][-1]["role"] == "assistant" and first.extra["rejected"][-1]["role"] == "assistant"
    assert first.extra["chosen"] != first.extra["rejected"]


def test_preference_shapes_from_llamafactory_and_torchtune(shared_data):
    rows, _ = load(shared_data("preference_misc/llamafactory_dpo_en_demo.jsonl"))
    assert len(rows) == 300
    assert rows[0].messages[0]["role"] == "user" and rows[0].extra["chosen"][0]["role"] == "assistant"
    rows, _ = load(shared_data("preference_misc/torchtune_hh_rlhf_tiny.jsonl"))
    assert rows[0].messages == [{"role": "user", "content": "What do I do when I have a hole in my trousers?"}]
    assert rows[0].extra["chosen"] == [{"role": "assistant", "content": "Fix the hole."}]
    assert rows[0].extra["rejected"] == [{"role": "assistant", "content": "Take them off."}]


def test_stack_exchange_pairs_through_column_mapping(shared_data):
    rows, _ = load(shared_data("preference_misc/stack_exchange_paired_tiny.jsonl"),
                   columns={"prompt": "question", "chosen": "response_j", "rejected": "response_k"})
    assert len(rows) == 25 and rows[0].kind == "preference"
    assert rows[0].messages[0]["content"].startswith("I'm writing a code using Java Swing")


def test_dolly_through_column_mapping(shared_data):
    rows, _ = load(shared_data("dolly/dolly_sample.jsonl"), columns={"input": "context", "output": "response"})
    assert len(rows) == 100 and rows[0].messages[-1]["role"] == "assistant"


def test_kto_unpaired_rows(shared_data, write_jsonl):
    path = shared_data("preference_misc/torchtune_hh_rlhf_tiny.jsonl")
    pairs = [json.loads(x) for x in path.read_text().splitlines()]
    p = pairs[0]
    kto = [{"prompt": p["chosen"][:-1], "completion": p["chosen"][-1]["content"], "label": True},
           {"prompt": p["rejected"][0]["content"], "completion": p["rejected"][-1]["content"], "label": False},
           {"prompt": "q", "completion": "c", "label": "yes"}]
    with pytest.raises(TunesmithError) as e:
        load(write_jsonl("kto.jsonl", kto))
    assert e.value.problems[0].line == 3 and e.value.problems[0].field == "label"
    rows, _ = load(write_jsonl("kto2.jsonl", kto[:2]))
    assert [r.kind for r in rows] == ["kto", "kto"] and [r.extra["label"] for r in rows] == [True, False]


def test_classification_from_jsonl_csv_tsv_and_parquet(shared_data, tmp_path):
    sst = [json.loads(x) for x in shared_data("sst2/sst2_train_sample2000.jsonl").read_text().splitlines()][:50]
    rows, _ = load(shared_data("sst2/sst2_train_sample2000.jsonl"), columns={"text": "sentence"})
    assert len(rows) == 2000 and rows[0].kind == "classification" and rows[0].extra["label"] in (0, 1)
    news, _ = load(shared_data("ag_news/ag_news_sample1000.jsonl"))
    assert {r.extra["label"] for r in news} == {"World", "Sports", "Business", "Sci/Tech"}

    with open(tmp_path / "sst.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([[r["sentence"], str(r["label"])] for r in sst])
    with open(tmp_path / "sst.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["text", "label"])
        w.writerows([[r["sentence"], str(r["label"])] for r in sst])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [r["sentence"] for r in sst], "label": [r["label"] for r in sst]}),
                   tmp_path / "sst.parquet")
    for name in ("sst.csv", "sst.tsv", "sst.parquet"):
        rows, _ = load(tmp_path / name)
        assert len(rows) == 50 and rows[3].extra["text"] == sst[3]["sentence"], name
    assert rows[3].line == 4  # parquet: the row number


def test_raw_text_files_and_jsonl_text(shared_data):
    rows, _ = load(shared_data("raw_text/us_constitution.txt"))
    assert len(rows) > 20 and all(r.kind == "text" for r in rows)
    assert rows[0].line == 1 and rows[1].line > rows[0].line
    shakespeare, _ = load(shared_data("raw_text/tinyshakespeare_part1.txt"))
    assert shakespeare[0].extra["text"].startswith("First Citizen:")
    c4, _ = load(shared_data("raw_text/c4_demo.jsonl"))
    assert len(c4) == 300 and c4[0].kind == "text"


def test_csv_with_a_short_row_names_its_line(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text('text,label\n"multi\nline",1\nonly-one-field\n')
    with pytest.raises(TunesmithError) as e:
        load(f)
    assert e.value.problems[0].line == 4 and "header has 2" in e.value.problems[0].problem


def test_csv_bad_byte_costs_one_line_and_a_bom_is_dropped(tmp_path):
    f = tmp_path / "big.csv"
    lines = [b"instruction,output"] + [f"q{i},a{i}".encode() for i in range(1, 10001)]
    lines[5001] = b"caf\xe9,latin-1"
    f.write_bytes(b"\n".join(lines) + b"\n")
    report = LoadReport()
    rows = load_examples([str(f)], on_error="skip", report=report)
    assert len(rows) == 9999 and [p.line for p in report.problems] == [5002]
    assert rows[-1].messages[0]["content"] == "q10000"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfinstruction,output\na,b\n")
    assert load_examples([str(bom)])[0].messages[0]["content"] == "a"
