"""Continued pre-training (recipe: cpt) and generative task tuning (sft on text -> label rows)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

import tunesmith
from tunesmith.data.formats import Example, task_examples
from tunesmith.data.templates import IGNORE_INDEX, tokenize_text
from tunesmith.errors import TunesmithError

POEM = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n\n"
        "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date.\n\n")


def _config(tiny_config, **over):
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in tiny_config.items()}
    for dotted, value in over.items():
        section, key = dotted.split("__") if "__" in dotted else (None, dotted)
        (cfg[section] if section else cfg)[key] = value
    return cfg


def test_text_windows_cover_every_token_once(tokenizer):
    docs = [Example(None, "f.txt", i, "text", {"text": t})
            for i, t in enumerate(["one two three", "four five six seven"])]
    rows, stats = tokenize_text(tokenizer, docs, max_length=4, stride=2)
    stream = (tokenizer("one two three", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
              + tokenizer("four five six seven", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    targets = [t for r in rows for t in r.labels if t != IGNORE_INDEX]
    assert targets == stream  # overlap is context only: each token is a target exactly once
    assert all(len(r.input_ids) <= 4 for r in rows) and stats.rows == 2
    assert stats.tokens == sum(len(r.input_ids) for r in rows)


def test_classification_rows_become_prompt_to_label_chats():
    ex = Example(None, "f.jsonl", 3, "classification", {"text": "great film", "label": "positive"})
    (out,) = task_examples([ex], "Sentiment of: {text}")
    assert out.kind == "chat" and (out.file, out.line) == ("f.jsonl", 3)
    assert out.messages == [{"role": "user", "content": "Sentiment of: great film"},
                            {"role": "assistant", "content": "positive"}]


def test_cpt_trains_on_raw_text_and_reports_held_out_perplexity(tiny_config, tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(POEM * 12)
    cfg = _config(tiny_config, recipe="cpt", data__train=[str(corpus)], data__max_length=32, data__stride=24,
                  train__max_steps=6)
    report = tunesmith.validate(cfg, kinds=("text",))
    assert report["data"]["train"]["windows"] > 0 and report["data"]["validation"]["rows"] == 6
    run_dir = tunesmith.train(cfg, show_progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["result"]["steps"] == 6 and manifest["result"]["eval_perplexity"] > 1
    b = [w for k, w in load_file(run_dir / "adapter" / "adapter_model.safetensors").items() if "lora_B" in k]
    assert b and all(w.abs().sum() > 0 for w in b)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")


def test_cpt_refuses_chat_rows_naming_the_recipe(tiny_config):
    with pytest.raises(TunesmithError, match="recipe: sft"):
        tunesmith.train(_config(tiny_config, recipe="cpt"), show_progress=False)


def test_generative_task_tuning_trains_only_the_label(tiny_config, write_jsonl, tokenizer):
    rows = [{"text": f"review number {i}: {'loved it' if i % 2 else 'hated it'}",
             "label": "positive" if i % 2 else "negative"} for i in range(16)]
    path = write_jsonl("sentiment.jsonl", rows)
    cfg = _config(tiny_config, data__train=[str(path)], data__task_prompt="Sentiment of: {text}")
    report = tunesmith.validate(cfg, kinds=("chat", "classification"))
    assert report["data"]["train"]["kinds"] == {"chat": 12}  # converted rows, 4 held out
    frac = report["data"]["train"]["loss_token_fraction"]
    assert 0 < frac < 0.25  # the label (and end of turn) carries loss, the prompt does not
    run_dir = tunesmith.train(cfg, show_progress=False)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"


def test_task_prompt_without_placeholder_is_refused(tiny_config):
    with pytest.raises(TunesmithError, match=r"no \{text\} placeholder"):
        tunesmith.load_config(_config(tiny_config, data__task_prompt="Classify this"))
