"""Generation and the interactive chat loop, on the tiny model (real tokenizer, real generate)."""

from __future__ import annotations

import pytest

import tunesmith
from tunesmith import inference
from tunesmith.errors import TunesmithError


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return tunesmith.load(tiny_model_dir)


def test_batched_greedy_generation_is_deterministic_and_matches_unbatched(loaded):
    prompts = ["Hi", "Tell me a long story about the sea and ships", "2+2?"]
    batched = tunesmith.generate(loaded, prompts, max_new_tokens=6)
    again = tunesmith.generate(loaded, prompts, max_new_tokens=6)
    single = [tunesmith.generate(loaded, p, max_new_tokens=6)[0] for p in prompts]
    assert batched == again
    # Left padding must not change what a row generates.
    assert batched == single


def test_chat_keeps_the_conversation_and_reset_clears_it(loaded, monkeypatch):
    seen = []
    real = inference.generate

    def spy(ld, convs, **kw):
        seen.append([m["role"] for m in convs[0]])
        return real(ld, convs, **kw)

    monkeypatch.setattr(inference, "generate", spy)
    inputs = iter(["hello", "and again", "/reset", "fresh start", "/exit"])
    printed = []
    inference.chat_loop(loaded, system="Be brief.", max_new_tokens=3, temperature=0.0,
                        input_fn=lambda _: next(inputs), print_fn=printed.append)
    assert seen == [["system", "user"], ["system", "user", "assistant", "user"], ["system", "user"]]
    assert "(conversation cleared)" in printed
    assert sum(p.startswith("bot> ") for p in printed) == 3


def test_chat_ends_on_eof(loaded):
    def eof(_):
        raise EOFError

    inference.chat_loop(loaded, input_fn=eof, print_fn=lambda *_: None)  # returns instead of raising


def test_unfinished_run_cannot_be_loaded(tmp_path):
    (tmp_path / "config.yaml").write_text("data:\n  train: x.jsonl\n")
    (tmp_path / "manifest.json").write_text('{"status": "running"}')
    with pytest.raises(TunesmithError, match="has not finished"):
        tunesmith.load(tmp_path)
