"""What a process keeps between federated rounds (tunesmith/federated/local.py): kept per config, so a
second run in the same process (a notebook, a long-lived SuperNode) never trains on the first one's."""

from __future__ import annotations

import tunesmith
from tunesmith.federated import local


def _cfg(train: list[str], **model) -> object:
    return tunesmith.load_config({"data": {"train": train}, "model": {"name": "smollm2-135m-instruct", **model},
                                  "federated": {"enabled": True, "num_clients": 2, "partition": "shards"}})


def test_a_client_rows_come_from_this_configs_data_not_an_earlier_runs(write_jsonl, tokenizer):
    a = write_jsonl("a.jsonl", [{"prompt": f"alpha {i}?", "completion": f"A{i}"} for i in range(4)])
    b = write_jsonl("b.jsonl", [{"prompt": f"beta {i}?", "completion": f"B{i}"} for i in range(4)])
    first = local.client_rows(_cfg([str(a)]), tokenizer, client=0)
    second = local.client_rows(_cfg([str(b)]), tokenizer, client=0)
    assert "alpha" in tokenizer.decode(first[0]["input_ids"])
    assert "beta" in tokenizer.decode(second[0]["input_ids"]), "client 0 got the earlier config's rows"


def test_the_held_model_is_keyed_on_the_whole_model_section():
    """The chat template (or rope, attention, ...) changes the tokenizer and model a run holds."""
    plain = _cfg(["a.jsonl"])
    templated = _cfg(["a.jsonl"], chat_template="{{ messages[0]['content'] }}")
    assert local._key(plain) != local._key(templated)
    assert local._key(plain) == local._key(_cfg(["a.jsonl"]))
