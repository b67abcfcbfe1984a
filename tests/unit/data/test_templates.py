"""The loss mask on SmolLM2's real ChatML template: assistant replies and their <|im_end|> train."""

from __future__ import annotations

import pytest

from tunesmith.data.formats import Example
from tunesmith.data.templates import IGNORE_INDEX, tokenize_conversation, tokenize_examples


def trained_text(tok, t) -> str:
    return tok.decode([i for i, lab in zip(t.input_ids, t.labels) if lab != IGNORE_INDEX])


def test_single_turn_trains_reply_and_end_of_turn_only(tokenizer):
    msgs = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    t = tokenize_conversation(tokenizer, msgs)
    assert trained_text(tokenizer, t) == "Blue.<|im_end|>"
    # The prompt (default system turn + user turn + "assistant\n" header) carries no loss.
    first_trained = next(k for k, lab in enumerate(t.labels) if lab != IGNORE_INDEX)
    assert tokenizer.decode(t.input_ids[:first_trained]).endswith("<|im_start|>assistant\n")
    assert "Name a colour." in tokenizer.decode(t.input_ids[:first_trained])


def test_end_of_turn_token_is_trained_and_trailing_newline_is_not(tokenizer):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    t = tokenize_conversation(tokenizer, msgs)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    last_trained = max(k for k, lab in enumerate(t.labels) if lab != IGNORE_INDEX)
    assert t.input_ids[last_trained] == im_end
    assert t.labels[last_trained] == im_end
    # Everything after the assistant's <|im_end|> (the template's "\n") is untrained.
    assert all(lab == IGNORE_INDEX for lab in t.labels[last_trained + 1:])
    assert last_trained + 1 < len(t.input_ids)


def test_multi_turn_trains_every_assistant_turn_and_no_user_or_system_turn(tokenizer):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
            {"role": "assistant", "content": "6"}]
    t = tokenize_conversation(tokenizer, msgs)
    assert trained_text(tokenizer, t) == "4<|im_end|>6<|im_end|>"
    assert len(t.input_ids) == len(t.labels)
    # Labels equal the input ids where trained (the model shifts them itself).
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(t.input_ids, t.labels))


def test_train_on_all_trains_every_token(tokenizer):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    t = tokenize_conversation(tokenizer, msgs, train_on="all")
    assert t.labels == t.input_ids


def _examples(n_words: int) -> list[Example]:
    long_reply = " ".join(["word"] * n_words)
    return [Example([{"role": "user", "content": "short"}, {"role": "assistant", "content": "ok"}], "f.jsonl", 1),
            Example([{"role": "user", "content": "long"}, {"role": "assistant", "content": long_reply}], "f.jsonl", 2)]


def test_overlong_rows_are_dropped_and_counted(tokenizer):
    rows, stats, problems = tokenize_examples(tokenizer, _examples(200), max_length=64, overlong="drop")
    assert (len(rows), stats.kept, stats.dropped_overlong, stats.truncated) == (1, 1, 1, 0)
    assert problems == []
    assert stats.summary()["length_max"] > 64


def test_overlong_rows_are_truncated_and_counted(tokenizer):
    rows, stats, _ = tokenize_examples(tokenizer, _examples(200), max_length=64, overlong="truncate")
    assert (len(rows), stats.truncated, stats.dropped_overlong) == (2, 1, 0)
    assert max(len(r.input_ids) for r in rows) == 64


def test_truncation_that_removes_every_trained_token_drops_the_row(tokenizer):
    ex = [Example([{"role": "user", "content": " ".join(["word"] * 200)}, {"role": "assistant", "content": "ok"}],
                  "f.jsonl", 3)]
    rows, stats, _ = tokenize_examples(tokenizer, ex, max_length=32, overlong="truncate")
    assert rows == [] and stats.dropped_no_loss == 1


def test_loss_fraction_is_reported(tokenizer):
    _, stats, _ = tokenize_examples(tokenizer, _examples(3), max_length=512)
    s = stats.summary()
    assert 0 < s["loss_token_fraction"] < 1
    assert s["tokens"] > s["loss_tokens"]


def test_template_that_does_not_render_incrementally_is_reported_with_line(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    # A template that prints the conversation newest-first: a longer chat does not extend a shorter one.
    tok.chat_template = ("{% for m in messages|reverse %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    _, _, problems = tokenize_examples(tok, [Example(msgs, "data.jsonl", 5)], max_length=64)
    assert len(problems) == 1 and problems[0].line == 5 and "incrementally" in problems[0].problem


def test_no_chat_template_is_an_error(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    from tunesmith.errors import TunesmithError

    with pytest.raises(TunesmithError, match="model.chat_template"):
        tokenize_examples(tok, _examples(1), max_length=64)


def test_a_template_that_raises_is_a_located_problem_not_a_crash(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
                         "{% endif %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    ex = [Example([{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                   {"role": "assistant", "content": "b"}], "data.jsonl", 9)]
    rows, _, problems = tokenize_examples(tok, ex, max_length=64)
    assert rows == [] and problems[0].line == 9 and "refused" in problems[0].problem


def test_tool_calls_the_template_drops_are_reported(tokenizer):
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    msgs = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "3 C", "tool_call_id": "c1"}, {"role": "assistant", "content": "3 C."}]
    _, _, problems = tokenize_examples(tokenizer, [Example(msgs, "t.jsonl", 4)], max_length=256)
    assert problems and "does not render tool calls" in problems[0].problem  # SmolLM2's ChatML drops them
