"""Real public data from ../shared/data through the loaders and the real SmolLM2 template."""

from __future__ import annotations

import pytest

from tunesmith.data.load import load_examples
from tunesmith.data.templates import tokenize_examples
from tunesmith.errors import TunesmithError


def test_alpaca_rows_load_and_tokenize(shared_data, tokenizer):
    path = shared_data("alpaca/alpaca_data_rows_0000-0099.jsonl")
    examples = load_examples([str(path)])
    assert len(examples) == 100
    with_input = [e for e in examples if "\n\n" in e.messages[0]["content"]]
    assert with_input, "alpaca rows with an `input` join it to the instruction"
    rows, stats, problems = tokenize_examples(tokenizer, examples, max_length=1024)
    assert problems == [] and stats.kept == 100 and len(rows) == 100
    assert 0.05 < stats.summary()["loss_token_fraction"] < 0.95


def test_alpaca_gpt4_demo_has_no_bad_rows(shared_data):
    assert len(load_examples([str(shared_data("alpaca_gpt4_demo/alpaca_en_demo.jsonl"))])) == 983


def test_dolly_shape_is_refused_with_the_line_and_the_missing_field(shared_data):
    # Dolly uses instruction/context/response; column mapping arrives with the data pipeline.
    path = shared_data("dolly/dolly_sample.jsonl")
    with pytest.raises(TunesmithError) as e:
        load_examples([str(path)], fmt="alpaca")
    first = e.value.problems[0]
    assert (first.file, first.line, first.field) == (str(path), 1, "output")
    assert len(e.value.problems) == 50 and "100 bad rows" in str(e.value)  # capped, with the count


def test_prepared_data_is_cached_and_invalidated(tmp_path, monkeypatch, tokenizer):
    import dataclasses

    from tunesmith.config import load_config
    from tunesmith.data.prepare import prepare

    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    cfg = load_config({"data": {"train": [str(data)]}})
    first = prepare(cfg.data, tokenizer, seed=1)
    again = prepare(cfg.data, tokenizer, seed=1)
    assert (first.load["cache"]["hit"], again.load["cache"]["hit"]) == (False, True)
    assert [r.input_ids for r in again.train] == [r.input_ids for r in first.train]
    # a changed file, a changed setting, a changed chat template: each misses
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "changed"}\n')
    changed = prepare(cfg.data, tokenizer, seed=1)
    assert changed.load["cache"]["hit"] is False and changed.train[1].input_ids != first.train[1].input_ids
    assert prepare(dataclasses.replace(cfg.data, max_length=300), tokenizer, seed=1).load["cache"]["hit"] is False
    import copy

    tok2 = copy.deepcopy(tokenizer)
    tok2.chat_template = tokenizer.chat_template.replace("helpful", "useful")
    assert prepare(cfg.data, tok2, seed=1).load["cache"]["hit"] is False
    assert prepare(cfg.data, tokenizer, seed=1).load["cache"]["hit"] is True


def test_cache_key_follows_the_toxicity_classifier_weights(tmp_path, tokenizer):
    import dataclasses

    from tunesmith.config import load_config
    from tunesmith.data.prepare import cache_key

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n')
    clf = tmp_path / "clf"
    clf.mkdir()
    (clf / "model.safetensors").write_bytes(b"one")
    cfg = load_config({"data": {"train": [str(data)], "clean": {"enabled": True, "toxicity": "drop",
                                                                "toxicity_classifier": str(clf)}}})
    first = cache_key(cfg.data, tokenizer, 1, ("chat",))
    (clf / "model.safetensors").write_bytes(b"two")
    assert cache_key(cfg.data, tokenizer, 1, ("chat",)) != first
    off = dataclasses.replace(cfg.data, clean=dataclasses.replace(cfg.data.clean, toxicity="off"))
    assert cache_key(off, tokenizer, 1, ("chat",)) == cache_key(off, tokenizer, 1, ("chat",))
