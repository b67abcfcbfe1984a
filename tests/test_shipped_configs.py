"""Every shipped config loads, and passes the full pre-flight (model, data, tokenization)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunesmith

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in ROOT.glob("configs/**/*.yaml") if "accelerate" not in p.parts) + sorted(
    ROOT.glob("examples/**/config.yaml"))  # configs/accelerate/ holds accelerate launch configs, not runs


def test_there_are_configs_to_check():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_validates(path, smollm2_dir):
    cfg = tunesmith.load_config(path)
    from tunesmith.recipes import KINDS

    kinds = KINDS[cfg.recipe]
    report = tunesmith.validate(cfg, kinds=kinds)
    train = report["data"]["train"]
    assert train["kept"] == train["rows"] > 0, "a shipped config must not drop its own rows"
    if cfg.recipe == "sft":
        assert 0 < train["loss_token_fraction"] < 1
