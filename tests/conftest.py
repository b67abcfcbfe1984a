"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random Llama that uses it.

The tiny model (2 layers, hidden size 64) makes recipe tests take seconds while exercising the
real tokenizer, chat template and loss mask of the embedded model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
QUICKSTART = ROOT / "examples" / "quickstart"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """Folder of the dequantized embedded SmolLM2 (tokenizer + weights), built once per cache."""
    from tunesmith.models.loading import materialize, resolve

    return Path(materialize(resolve("smollm2-135m-instruct")))


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    from tunesmith.models.loading import load_tokenizer, resolve

    return load_tokenizer(resolve(str(smollm2_dir)))


@pytest.fixture(scope="session")
def make_tiny_llama(tmp_path_factory, tokenizer):
    """Builds a random 2-layer Llama (hidden 64) saved with the real SmolLM2 tokenizer; returns its folder."""

    def make(name: str = "tiny-llama", max_positions: int = 1024) -> Path:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                          tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        out = tmp_path_factory.mktemp(name)
        LlamaForCausalLM(cfg).save_pretrained(out)
        tokenizer.save_pretrained(out)
        return out

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(make_tiny_llama) -> Path:
    """A random 2-layer Llama (hidden 64) saved with the real SmolLM2 tokenizer."""
    return make_tiny_llama()


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """24 quickstart rows as a JSONL file of its own."""
    lines = (QUICKSTART / "train.jsonl").read_text().splitlines()[:24]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_config(tmp_path, tiny_model_dir, tiny_data) -> dict:
    """A run config (as a dict) that trains the tiny model for a few steps."""
    return {
        "name": "tiny", "output_dir": str(tmp_path / "runs"), "seed": 7,
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": [str(tiny_data)], "validation_fraction": 0.25, "max_length": 256},
        "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1, "save_steps": 2,
                  "eval_steps": 2, "precision": "fp32"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    }


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl(name, rows) -> path of a JSONL file in tmp_path."""

    def write(name: str, rows: list) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write


@pytest.fixture
def shared_data():
    """shared_data(rel) -> path under ../shared/data, or a skip naming what is missing."""

    def get(rel: str) -> Path:
        p = SHARED_DATA / rel
        if not p.exists():
            pytest.skip(f"../shared/data/{rel} is not present (the shared folder sits beside the checkout)")
        return p

    return get
