"""Every shipped run config trains two steps on a tiny model: its trainable parameters change, and
what it saves loads back with plain peft / transformers.

The configs keep their own data, method and objective; only the model (a tiny random Llama with the
real SmolLM2 tokenizer; the real MiniLM for the encoder config), the step count and the output folder
are overridden. Configs needing resources a test cannot hold are covered by their own tests: PPO
needs a trained reward model (tests/recipes/test_ppo.py); the MoE config a mixture-of-experts model
(tests/recipes/test_moe_lora.py trains it on tiny Qwen2-MoE, Mixtral and OLMoE checkpoints).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunesmith

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in ROOT.glob("configs/*.yaml"))
OWN_TESTS = {"ppo-lora.yaml": "tests/recipes/test_ppo.py", "sweep-lora.yaml": "tests/unit/test_sweep.py",
             "moe-lora.yaml": "tests/recipes/test_moe_lora.py",  # an MoE hub model: tiny MoEs there
             "vlm-lora.yaml": "tests/recipes/test_vlm.py",  # a vision-language hub model: a tiny LLaVA there
             "federated-lora.yaml": "tests/recipes/test_federated.py"}  # Flower simulation: one per module there


class _Snapshot:
    """A TrainerCallback recording the trainable parameters at the start and how many changed."""

    def __init__(self):
        from transformers import TrainerCallback

        snap = self

        class CB(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                if model is None:  # a loop of its own (DP-SGD) may pass no model
                    return
                snap.before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

            def on_train_end(self, args, state, control, model=None, **kw):
                if model is None or not snap.before:
                    return
                params = dict(model.named_parameters())
                snap.changed = [n for n, t in snap.before.items() if not params[n].detach().equal(t)]

        self.callback = CB()
        self.before, self.changed = {}, None


def test_configs_with_their_own_training_test_are_named_there():
    for name, test in OWN_TESTS.items():
        assert (ROOT / "configs" / name).is_file() and name in (ROOT / test).read_text(), (name, test)


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name not in OWN_TESTS], ids=lambda p: p.name)
def test_shipped_config_trains_and_loads_back(path, tmp_path, tiny_model_dir):
    cfg = tunesmith.load_config(path)
    model = "all-minilm-l6-v2" if cfg.recipe == "classify" else str(tiny_model_dir)
    overrides = {"model.name": model, "output_dir": str(tmp_path), "train.max_steps": 2, "train.batch_size": 2,
                 "train.eval_steps": 0, "train.early_stopping_patience": 0, "train.precision": "fp32",
                 "train.logging_steps": 1, "train.warmup_ratio": 0.0}
    if cfg.recipe == "grpo":
        overrides.update({"train.batch_size": cfg.rl.num_generations, "rl.max_new_tokens": 8})
    # the tiny Llama has 1024 positions (x rope_factor when the config scales them): a long-context
    # config keeps its scaling and is held to what the tiny model reaches
    reach = 1024 * (cfg.model.rope_factor if cfg.model.rope_scaling != "none" else 1)
    if cfg.data.max_length > reach:
        overrides["data.max_length"] = int(reach)
    snap = _Snapshot()
    run_dir = tunesmith.train(path, overrides, show_progress=False, callbacks=(snap.callback,))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 2

    if snap.changed is not None:  # Trainer-based recipes (DP-SGD runs its own loop, tested in test_privacy)
        assert snap.before, "nothing was trainable"
        assert snap.changed, "no trainable parameter changed"

    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if (run_dir / "model").is_dir():
        cls = AutoModelForSequenceClassification if cfg.recipe == "classify" else AutoModelForCausalLM
        cls.from_pretrained(run_dir / "model")
        return
    from peft import PeftModel

    from tunesmith.models.loading import materialize, resolve

    if cfg.recipe in ("classify", "reward"):
        labels = 1 if cfg.recipe == "reward" else len(json.loads((run_dir / "adapter" / "labels.json").read_text()))
        base = AutoModelForSequenceClassification.from_pretrained(materialize(resolve(model)), num_labels=labels)
    else:
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    loaded = PeftModel.from_pretrained(base, run_dir / "adapter")
    assert any("lora_" in n or "vera_" in n or "ia3_" in n or "prompt_encoder" in n
               for n, _ in loaded.named_parameters())
