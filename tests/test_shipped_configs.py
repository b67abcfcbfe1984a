"""Every shipped config loads, and passes the full pre-flight (model, data, tokenization)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunesmith

ROOT = Path(__file__).resolve().parents[1]
# configs/accelerate/ holds accelerate launch configs, configs/eval/ and configs/audit/ suites, configs/merge/
# merge configs (tested by tests/recipes/test_merge_runs.py), not runs.
NOT_RUNS = {"accelerate", "eval", "audit", "merge"}
CONFIGS = sorted(p for p in ROOT.glob("configs/**/*.yaml") if not NOT_RUNS & set(p.parts)) + sorted(
    ROOT.glob("examples/**/config.yaml"))
SUITES = sorted(ROOT.glob("configs/eval/*.yaml")) + sorted(ROOT.glob("examples/**/eval-suite.yaml"))
# Configs whose model is a hub download: validated by their own test with a tiny stand-in model.
OWN_TESTS = {"moe-lora.yaml": "tests/recipes/test_moe_lora.py", "vlm-lora.yaml": "tests/recipes/test_vlm.py"}


def test_there_are_configs_to_check():
    assert len(CONFIGS) >= 4


def test_configs_with_their_own_validation_test_are_named_there():
    for name, test in OWN_TESTS.items():
        assert (ROOT / "configs" / name).is_file() and name in (ROOT / test).read_text()


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name not in OWN_TESTS],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_validates(path, smollm2_dir):
    cfg = tunesmith.load_config(path)
    from tunesmith.recipes import KINDS

    kinds = KINDS[cfg.recipe]
    report = tunesmith.validate(cfg, kinds=kinds)
    train = report["data"]["train"]
    assert train["kept"] == train["rows"] > 0, "a shipped config must not drop its own rows"
    if cfg.recipe == "sft":
        assert 0 < train["loss_token_fraction"] < 1


@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_eval_suite_loads(path):
    from tunesmith.eval.tasks import load_suite

    suite = load_suite(path)
    assert suite.tasks and all(Path(t.data).is_file() for t in suite.tasks)


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/audit/*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_audit_suite_loads(path):
    from tunesmith.audit.run import CHECKS, load_suite

    suite = load_suite(path)
    assert suite["checks"] and set(suite["checks"]) <= set(CHECKS)
    for opts in suite["checks"].values():
        for key in ("prompts", "bbq", "templates"):
            if opts.get(key):
                assert Path(opts[key]).is_file()
