"""Data files to canonical conversations: alpaca and chat rows, and every bad row located by file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.data.formats import Example, row_to_example, row_to_messages
from tunesmith.data.load import MAX_REPORTED, load_examples
from tunesmith.data.readers import iter_rows
from tunesmith.errors import Problem, TunesmithError

WHERE = {"file": "f.jsonl", "line": 3}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jl(row) -> str:
    return json.dumps(row)


def alpaca(i: int = 0) -> dict:
    return {"instruction": f"q{i}", "output": f"a{i}"}


def problems_of(paths, **kw) -> list[Problem]:
    with pytest.raises(TunesmithError) as info:
        load_examples([str(p) for p in paths], **kw)
    return info.value.problems


# --------------------------------------------------------------------------- row conversion


def test_alpaca_without_input():
    msgs, problems = row_to_messages({"instruction": "Say hi", "output": "Hi"}, "alpaca", WHERE)
    assert problems == []
    assert msgs == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi"}]


def test_alpaca_with_input_joins_instruction_and_input():
    msgs, problems = row_to_messages({"instruction": "Translate", "input": "bonjour", "output": "hello"},
                                     "alpaca", WHERE)
    assert problems == []
    assert msgs == [{"role": "user", "content": "Translate\n\nbonjour"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize("empty_input", ["", "   ", None])
def test_alpaca_with_empty_input_uses_instruction_only(empty_input):
    msgs, problems = row_to_messages({"instruction": "Do it", "input": empty_input, "output": "done"},
                                     "alpaca", WHERE)
    assert problems == []
    assert msgs[0] == {"role": "user", "content": "Do it"}


def test_alpaca_with_system():
    msgs, problems = row_to_messages({"system": "Be terse.", "instruction": "Q", "input": "ctx", "output": "A"},
                                     "alpaca", WHERE)
    assert problems == []
    assert msgs == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q\n\nctx"},
                    {"role": "assistant", "content": "A"}]


def test_alpaca_problems_are_located_and_all_reported():
    msgs, problems = row_to_messages({"instruction": "  ", "input": 5}, "alpaca", WHERE)
    assert msgs is None
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"instruction", "input", "output"}
    assert by_field["instruction"].problem == "'instruction' is empty"
    assert by_field["input"].problem == "'input' is int, not text"
    assert by_field["output"].problem == "'output' is missing"
    assert all((p.file, p.line) == ("f.jsonl", 3) for p in problems)


def test_chat_with_system_and_multi_turn():
    row = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"},
                        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
                        {"role": "assistant", "content": "a2"}]}
    msgs, problems = row_to_messages(row, "chat", WHERE)
    assert problems == []
    assert msgs == row["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]


def test_chat_drops_extra_message_keys():
    row = {"messages": [{"role": "user", "content": "u", "name": "x"}, {"role": "assistant", "content": "a",
                                                                         "weight": 0}]}
    msgs, _ = row_to_messages(row, "chat", WHERE)
    # OpenAI's own keys (name, tool_calls, tool_call_id) are kept; anything else is dropped.
    assert msgs == [{"role": "user", "content": "u", "name": "x"}, {"role": "assistant", "content": "a"}]


def test_auto_detects_chat_and_alpaca():
    chat = {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}
    assert row_to_messages(chat, "auto", WHERE) == (chat["messages"], [])
    msgs, problems = row_to_messages({"instruction": "i", "output": "o"}, "auto", WHERE)
    assert problems == []
    assert msgs == [{"role": "user", "content": "i"}, {"role": "assistant", "content": "o"}]


def test_auto_with_unknown_keys_is_a_problem():
    msgs, problems = row_to_messages({"question": "p", "reply": "c"}, "auto", WHERE)
    assert msgs is None
    assert len(problems) == 1
    assert problems[0].problem == "cannot tell the format from the keys (question, reply)"


def test_prompt_rows_for_rl_and_prompt_completion_rows_for_sft():
    ex, problems = row_to_example({"prompt": "2+2?", "answer": "4"}, "auto", WHERE)
    assert problems == [] and ex.kind == "prompt"
    assert ex.messages == [{"role": "user", "content": "2+2?"}] and ex.extra == {"answer": "4"}
    ex, problems = row_to_example({"prompt": "p", "completion": "c"}, "auto", WHERE)
    assert problems == [] and ex.kind == "chat"
    assert ex.messages == [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}]
    ex, problems = row_to_example({"prompt": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
                                  "prompt", WHERE)
    assert ex is None and "ends with an assistant turn" in problems[0].problem
    assert problems[0].line == 3


def test_forced_format_does_not_autodetect():
    msgs, problems = row_to_messages({"instruction": "i", "output": "o"}, "chat", WHERE)
    assert msgs is None
    assert [p.field for p in problems] == ["messages"]
    chat = {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}
    msgs, problems = row_to_messages(chat, "alpaca", WHERE)
    assert msgs is None
    assert {p.field for p in problems} == {"instruction", "output"}


def test_row_that_is_not_an_object():
    msgs, problems = row_to_messages([1, 2], "auto", WHERE)
    assert msgs is None
    assert problems[0].problem == "row is a list, not an object"


def test_chat_without_assistant_is_a_problem():
    msgs, problems = row_to_messages({"messages": [{"role": "system", "content": "s"},
                                                   {"role": "user", "content": "u"}]}, "chat", WHERE)
    assert msgs is None
    assert len(problems) == 1
    assert problems[0].field == "messages"
    assert "no assistant message" in problems[0].problem


def test_chat_system_not_first_is_a_problem():
    msgs, problems = row_to_messages({"messages": [{"role": "user", "content": "u"},
                                                   {"role": "system", "content": "s"},
                                                   {"role": "assistant", "content": "a"}]}, "chat", WHERE)
    assert msgs is None
    assert len(problems) == 1
    assert problems[0].field == "messages[1].role"
    assert problems[0].problem == "a system message must come first"


@pytest.mark.parametrize("content", ["", "  \n "])
def test_chat_empty_assistant_content_is_a_problem(content):
    msgs, problems = row_to_messages({"messages": [{"role": "user", "content": "u"},
                                                   {"role": "assistant", "content": content}]}, "chat", WHERE)
    assert msgs is None
    assert len(problems) == 1
    assert problems[0].field == "messages[1].content"
    assert problems[0].problem == "assistant content is empty"


def test_chat_bad_roles_and_contents_all_reported():
    row = {"messages": [{"role": "human", "content": "u"}, "text", {"role": "assistant"},
                        {"role": "user", "content": 3}]}
    msgs, problems = row_to_messages(row, "chat", WHERE)
    assert msgs is None
    assert [p.field for p in problems] == ["messages[0].role", "messages[1]", "messages[2].content",
                                           "messages[3].content"]
    assert problems[0].problem == "role 'human' is not one of system, user, assistant, tool"
    assert problems[2].problem == "content is missing"
    assert problems[3].problem == "content is int"


@pytest.mark.parametrize("messages", [[], None, "hi", {"role": "user"}])
def test_chat_messages_must_be_a_non_empty_list(messages):
    msgs, problems = row_to_messages({"messages": messages}, "chat", WHERE)
    assert msgs is None
    assert [p.field for p in problems] == ["messages"]


# --------------------------------------------------------------------------- JSONL files


def test_load_jsonl_mixed_formats(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [
        jl({"instruction": "i", "output": "o"}),
        jl({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}),
    ])
    ex = load_examples([str(f)])
    assert ex == [
        Example([{"role": "user", "content": "i"}, {"role": "assistant", "content": "o"}], str(f), 1),
        Example([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], str(f), 2),
    ]


def test_invalid_json_on_line_7_names_file_and_line(tmp_path):
    lines = [jl(alpaca(i)) for i in range(1, 7)] + ['{"instruction": "x", "output": '] + [jl(alpaca(8))]
    f = write_lines(tmp_path / "train.jsonl", lines)
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    err = info.value
    assert len(err.problems) == 1
    p = err.problems[0]
    assert p.line == 7
    assert p.file == str(f)
    assert p.problem.startswith("not valid JSON")
    msg = str(err)
    assert f"{f}:7:" in msg
    assert "7" in msg
    assert msg.startswith(f"{f}:7: not valid JSON")  # one problem: one line, file:line first


def test_iter_rows_yields_problem_for_bad_line_and_keeps_going(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [jl(alpaca(1)), "not json", jl(alpaca(3))])
    rows = list(iter_rows(f))
    assert [n for n, _ in rows] == [1, 2, 3]
    assert rows[0][1] == alpaca(1)
    assert isinstance(rows[1][1], Problem) and rows[1][1].line == 2
    assert rows[2][1] == alpaca(3)


def test_several_bad_rows_all_reported_with_their_lines(tmp_path):
    f = write_lines(tmp_path / "train.jsonl", [
        jl(alpaca(1)),                                                                  # 1 ok
        jl({"instruction": "q"}),                                                       # 2 missing output
        jl(alpaca(3)),                                                                  # 3 ok
        jl(alpaca(4)),                                                                  # 4 ok
        jl({"messages": [{"role": "user", "content": "u"}, {"role": "bot", "content": "a"}]}),  # 5 bad role
        jl(alpaca(6)),
        jl(alpaca(7)),
        jl(alpaca(8)),
        "{broken",                                                                      # 9 invalid JSON
        jl(alpaca(10)),
    ])
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    err = info.value
    assert len(err.problems) == 3
    assert [(p.line, p.field) for p in err.problems] == [(2, "output"), (5, "messages[1].role"), (9, None)]
    assert all(p.file == str(f) for p in err.problems)
    msg = str(err)
    assert msg.splitlines()[0] == "3 bad rows in the data:"
    assert f"{f}:2: output: 'output' is missing" in msg
    assert f"{f}:5: messages[1].role: role 'bot'" in msg
    assert f"{f}:9: not valid JSON" in msg


def test_blank_lines_are_skipped_but_line_numbers_stay_true(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n" + jl(alpaca(2)) + "\n\n   \n" + jl(alpaca(5)) + "\n\t\n" + jl({"instruction": "x"}) + "\n\n")
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    assert [(p.line, p.field) for p in info.value.problems] == [(7, "output")]
    f.write_text("\n" + jl(alpaca(2)) + "\n\n   \n" + jl(alpaca(5)) + "\n\t\n" + jl(alpaca(7)) + "\n\n")
    ex = load_examples([str(f)])
    assert [e.line for e in ex] == [2, 5, 7]
    assert [e.messages[0]["content"] for e in ex] == ["q2", "q5", "q7"]


def test_crlf_line_endings(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes((jl(alpaca(1)) + "\r\n\r\n" + jl(alpaca(3)) + "\r\n").encode())
    assert [e.line for e in load_examples([str(f)])] == [1, 3]


def test_problem_cap(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [jl({"instruction": f"q{i}"}) for i in range(MAX_REPORTED + 10)])
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    err = info.value
    assert len(err.problems) == MAX_REPORTED
    assert err.title == f"{MAX_REPORTED + 10} bad rows in the data (first {MAX_REPORTED} shown):"
    assert err.problems[-1].line == MAX_REPORTED


def test_problems_from_several_files_are_collected(tmp_path):
    good = write_lines(tmp_path / "good.jsonl", [jl(alpaca(1))])
    bad = write_lines(tmp_path / "bad.jsonl", [jl(alpaca(1)), jl({"output": "o", "instruction": 3})])
    missing = tmp_path / "missing.jsonl"
    problems = problems_of([good, bad, missing])
    assert [(p.file, p.line) for p in problems] == [(str(bad), 2), (str(missing), None)]


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "sub" / "nope.jsonl"
    with pytest.raises(TunesmithError) as info:
        load_examples([str(missing)])
    p = info.value.problems[0]
    assert p.file == str(missing)
    assert "not found" in p.problem
    assert str(missing) in str(info.value)


def test_directory_is_not_a_data_file(tmp_path):
    with pytest.raises(TunesmithError) as info:
        list(iter_rows(tmp_path))
    assert "not found" in str(info.value)


def test_empty_file_list_gives_no_examples():
    assert load_examples([]) == []


# --------------------------------------------------------------------------- JSON array files


JSON_ARRAY = """[
  {
    "instruction": "a",
    "output": "b"
  },
  {"instruction": "c", "output": "d"},
  {
    "instruction": "e"
  },
  {"messages": [{"role": "user", "content": "u"},
                {"role": "assistant", "content": "v"}]}
]
"""


def test_json_array_elements_are_located_by_their_first_line(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(JSON_ARRAY)
    rows = list(iter_rows(f))
    assert [n for n, _ in rows] == [2, 6, 7, 10]
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    assert [(p.line, p.field) for p in info.value.problems] == [(7, "output")]
    assert f"{f}:7: output:" in str(info.value)


def test_json_array_good_rows(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(JSON_ARRAY.replace('"instruction": "e"', '"instruction": "e", "output": "f"'))
    ex = load_examples([str(f)])
    assert [e.line for e in ex] == [2, 6, 7, 10]
    assert ex[2].messages == [{"role": "user", "content": "e"}, {"role": "assistant", "content": "f"}]
    assert ex[3].messages[-1] == {"role": "assistant", "content": "v"}


def test_json_array_syntax_error_names_its_line_and_keeps_earlier_rows_checked(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('[\n  {"instruction": "a"},\n  {"instruction": "c", "output": "d"},\n  {"instruction": oops}\n]\n')
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    assert [(p.line, p.field) for p in info.value.problems] == [(2, "output"), (4, None)]
    assert info.value.problems[1].problem.startswith("not valid JSON")
    assert f"{f}:4: not valid JSON" in str(info.value)


@pytest.mark.parametrize("text, problem", [("\n\n  42\n", "must hold one array"), ('"row"', "must hold one array"),
                                           ("", "holds no rows"), ("\ufeff \n", "holds no rows")])
def test_json_file_that_is_not_an_array_is_a_problem_of_the_file(tmp_path, text, problem):
    f = tmp_path / "d.json"
    f.write_text(text)
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)])
    p = info.value.problems[0]
    assert len(info.value.problems) == 1
    assert (p.file, p.line) == (str(f), None)  # the whole file, no invented line number
    assert problem in p.problem


def test_json_file_of_objects_one_after_another_is_read_as_datasets_does(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c",\n "output": "d"}\n\n'
                 '{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}\n')
    assert [(e.line, e.kind) for e in load_examples([str(f)])] == [(1, "chat"), (2, "chat"), (5, "chat")]


def test_empty_files_are_errors_naming_the_file(tmp_path):
    for name, text in (("d.json", " [ ] "), ("e.jsonl", "\n\n")):
        f = tmp_path / name
        f.write_text(text)
        with pytest.raises(TunesmithError, match="holds no rows") as e:
            load_examples([str(f)])
        assert e.value.problems[0].file == str(f)


@pytest.mark.parametrize("text", ['[{"instruction": "a", "output": "b"} {"instruction": "c", "output": "d"}]',
                                  '[,{"instruction": "a", "output": "b"}]',
                                  '[{"instruction": "a", "output": "b"},]',
                                  '[{"instruction": "a", "output": "b"}] trailing'])
def test_malformed_json_arrays_are_errors(tmp_path, text):
    f = tmp_path / "d.json"
    f.write_text(text)
    with pytest.raises(TunesmithError, match="not valid JSON"):
        load_examples([str(f)])


def test_truncated_json_array_is_an_error(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "output": "d"}\n')
    with pytest.raises(TunesmithError):
        load_examples([str(f)])


# --------------------------------------------------------------------------- system prompt


def test_system_prompt_is_added_only_to_rows_without_one(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [
        jl({"instruction": "i1", "output": "o1"}),
        jl({"instruction": "i2", "output": "o2", "system": "own alpaca system"}),
        jl({"messages": [{"role": "system", "content": "own chat system"}, {"role": "user", "content": "u"},
                         {"role": "assistant", "content": "a"}]}),
        jl({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}),
    ])
    ex = load_examples([str(f)], system_prompt="DEFAULT")
    assert [e.messages[0] for e in ex] == [
        {"role": "system", "content": "DEFAULT"},
        {"role": "system", "content": "own alpaca system"},
        {"role": "system", "content": "own chat system"},
        {"role": "system", "content": "DEFAULT"},
    ]
    assert [len(e.messages) for e in ex] == [3, 3, 3, 3]
    assert sum(m["role"] == "system" for e in ex for m in e.messages) == 4


def test_no_system_prompt_leaves_rows_alone(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [jl(alpaca(1))])
    assert load_examples([str(f)])[0].messages[0]["role"] == "user"
    assert load_examples([str(f)], system_prompt="")[0].messages[0]["role"] == "user"


def test_format_argument_is_applied_to_every_row(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [jl(alpaca(1))])
    with pytest.raises(TunesmithError) as info:
        load_examples([str(f)], fmt="chat")
    assert [(p.line, p.field) for p in info.value.problems] == [(1, "messages")]
