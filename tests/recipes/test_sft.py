"""SFT recipe smoke tests on a tiny random Llama with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import tunesmith
from tunesmith.errors import TunesmithError


def _run(tiny_config, **over):
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in tiny_config.items()}
    for dotted, value in over.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    return tunesmith.train(cfg, show_progress=False)


def test_lora_run_trains_the_adapter_and_writes_a_complete_run_dir(tiny_config, tiny_model_dir):
    run_dir = _run(tiny_config)
    for name in ("config.yaml", "manifest.json", "metrics.jsonl", "data_report.json", "adapter/adapter_config.json",
                 "adapter/adapter_model.safetensors", "adapter/tokenizer_config.json"):
        assert (run_dir / name).exists(), name

    # LoRA B matrices start at zero: any non-zero entry means training changed the adapter.
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    b = [w for k, w in weights.items() if "lora_B" in k]
    assert b and all(w.abs().sum() > 0 for w in b)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["seed"] == 7
    assert {"tunesmith", "torch", "transformers", "peft"} <= set(manifest["versions"])
    assert len(manifest["data"][0]["sha256"]) == 64 and len(manifest["model"]["sha256"]) == 64
    assert manifest["hardware"]["cpu_count"] >= 1
    assert manifest["result"]["steps"] == 4 and manifest["parameters"]["trainable"] < manifest["parameters"]["total"]

    from tunesmith.runs import read_metrics

    metrics = read_metrics(run_dir)
    losses = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in losses] == [1, 2, 3, 4]
    assert all(m["tokens_per_s"] > 0 and "learning_rate" in m for m in losses)
    assert [m["step"] for m in metrics if "eval_loss" in m] == [2, 4]

    # Plain peft loads the adapter onto the base model.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0

    resolved = tunesmith.load_config(run_dir / "config.yaml")
    assert resolved.train.max_steps == 4 and resolved.lora.r == 4


def test_loss_goes_down_on_repeated_data(tiny_config):
    run_dir = _run(tiny_config, train__max_steps=16, train__eval_steps=0, data__validation_fraction=0.0,
                   train__method="full", train__learning_rate=3e-3, train__warmup_ratio=0.0,
                   train__lr_scheduler="constant")
    from tunesmith.runs import read_metrics

    losses = [m["loss"] for m in read_metrics(run_dir) if "loss" in m]
    assert losses[-1] < losses[0] * 0.75, losses


def test_full_fine_tuning_changes_the_weights(tiny_config, tiny_model_dir):
    run_dir = _run(tiny_config, train__method="full", train__learning_rate=1e-3)
    before = load_file(next(tiny_model_dir.glob("*.safetensors")))
    after = load_file(next((run_dir / "model").glob("*.safetensors")))
    key = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(before[key], after[key])
    assert not (run_dir / "adapter").exists()


def test_generation_from_a_run_dir(tiny_config):
    run_dir = _run(tiny_config, train__max_steps=1, train__eval_steps=0, data__validation_fraction=0.0)
    replies = tunesmith.generate(str(run_dir), ["Hello", "Turn this into a contact record."], max_new_tokens=5)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)


def test_a_finished_run_is_not_overwritten_by_accident(tiny_config):
    _run(tiny_config, train__max_steps=1, train__eval_steps=0)
    with pytest.raises(TunesmithError, match="finished run"):
        _run(tiny_config, train__max_steps=1, train__eval_steps=0)


def test_bad_data_stops_before_training_with_file_and_line(tiny_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n')
    cfg = dict(tiny_config, data={"train": [str(bad)]}, train={"max_steps": 1})
    with pytest.raises(TunesmithError) as e:
        tunesmith.train(cfg, show_progress=False)
    assert f"{bad}:2" in str(e.value) and "output" in str(e.value)
    assert not (tmp_path / "runs" / "tiny").exists(), "bad data must not leave a run directory behind"


def test_a_run_with_a_clean_section_writes_the_data_report(tiny_config, tiny_data):
    rows = tiny_data.read_text().splitlines()
    tiny_data.write_text("\n".join(rows + rows[:3]) + "\n")  # 3 exact duplicates
    run_dir = _run(tiny_config, train__max_steps=1, train__eval_steps=0, data__validation_fraction=0.0,
                   data__clean={"enabled": True, "pii": "report", "dedup": "exact"})
    report = json.loads((run_dir / "data_report.json").read_text())
    clean = report["load"]["train"]["clean"]
    assert clean["before"]["rows"] == 27 and clean["after"]["rows"] == 24
    assert clean["dropped"] == {"duplicate": 3}
    assert report["train"]["kept"] == 24


def test_packed_training_reports_its_efficiency(tiny_config, capsys):
    run_dir = _run(tiny_config, train__max_steps=2, train__eval_steps=2, data__packing=True, data__max_length=512)
    report = json.loads((run_dir / "data_report.json").read_text())
    packing = report["packing"]
    # On CPU, rows that already pad well are told packing will likely be slower.
    from tunesmith.recipes.sft import PACKING_PAYS_BELOW

    advised = "packing is likely slower than padding" in capsys.readouterr().out
    assert advised == (packing["padded_efficiency"] >= PACKING_PAYS_BELOW and not torch.cuda.is_available())
    assert packing["examples"] == report["train"]["kept"] and packing["packs"] < packing["examples"]
    assert packing["efficiency"] == round(report["train"]["tokens"] / (packing["packs"] * 512), 4)
    from tunesmith.runs import read_metrics

    assert any("eval_loss" in m for m in read_metrics(run_dir))  # eval rows stay unpacked and padded


def test_early_stopping_stops_and_keeps_the_best(tiny_config):
    # A threshold no eval can beat: the second evaluation stops the run; the kept weights are those
    # of the lowest eval loss.
    run_dir = _run(tiny_config, train__max_steps=20, train__eval_steps=2, train__early_stopping_patience=1,
                   train__early_stopping_threshold=10.0)
    result = json.loads((run_dir / "manifest.json").read_text())["result"]
    assert result["steps"] == 4 and result["stopped_early"] is True
    from tunesmith.runs import read_metrics

    evals = {m["step"]: m["eval_loss"] for m in read_metrics(run_dir) if "eval_loss" in m}
    assert result["best_checkpoint"].endswith(f"checkpoint-{min(evals, key=evals.get)}")


def _losses_and_adapter(run_dir):
    from tunesmith.runs import read_metrics

    losses = [m["loss"] for m in read_metrics(run_dir) if "loss" in m]
    return losses, load_file(run_dir / "adapter" / "adapter_model.safetensors")


def test_same_seed_same_run_other_seed_other_run(tiny_config):
    """Seed determinism: data order, LoRA init and dropout all follow `seed`."""
    common = dict(train__eval_steps=0, data__validation_fraction=0.0, lora__dropout=0.1)
    a = _losses_and_adapter(_run({**tiny_config, "name": "a"}, **common))
    b = _losses_and_adapter(_run({**tiny_config, "name": "b"}, **common))
    c = _losses_and_adapter(_run({**tiny_config, "name": "c", "seed": 8}, **common))
    assert a[0] == b[0] and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    assert a[0] != c[0] and any(not torch.equal(a[1][k], c[1][k]) for k in a[1])


def test_gradient_checkpointing_gives_the_same_training(tiny_config):
    """Activation checkpointing recomputes activations in the backward pass: same numbers, less memory."""
    common = dict(train__eval_steps=0, data__validation_fraction=0.0)
    plain = _losses_and_adapter(_run({**tiny_config, "name": "plain"}, **common))
    ckpt = _losses_and_adapter(_run({**tiny_config, "name": "ckpt"}, train__gradient_checkpointing=True, **common))
    assert ckpt[0] == pytest.approx(plain[0], rel=1e-5)
    assert all(torch.allclose(plain[1][k], ckpt[1][k], rtol=1e-4, atol=1e-6) for k in plain[1])


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant_with_warmup"])
def test_learning_rate_follows_warmup_and_schedule(tiny_config, scheduler):
    from tunesmith.runs import read_metrics

    run_dir = _run(tiny_config, train__max_steps=8, train__eval_steps=0, data__validation_fraction=0.0,
                   train__warmup_ratio=0.25, train__lr_scheduler=scheduler, train__learning_rate=1e-3)
    lr = {m["step"]: m["learning_rate"] for m in read_metrics(run_dir) if "learning_rate" in m}

    def expected(k):  # the schedule's factor after k optimizer steps; 2 warm-up steps (25% of 8)
        if k < 2:
            return k / 2
        return {"linear": (8 - k) / 6, "cosine": 0.5 * (1 + math.cos(math.pi * (k - 2) / 6)),
                "constant_with_warmup": 1.0}[scheduler]

    # The rate logged at step s is the one step s used: the factor after s - 1 steps.
    assert [lr[s] for s in range(1, 9)] == pytest.approx([1e-3 * expected(s - 1) for s in range(1, 9)], abs=1e-9)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_label_only_head_trains_as_the_full_head(tiny_config, precision):
    """train.label_head (on by default) gives the losses of the model's own full-vocabulary loss,
    through the real Trainer: accumulation, autocast and evaluation included."""
    runs = {}
    for on in (True, False):
        cfg = {**tiny_config, "name": f"head-{on}-{precision}"}
        run_dir = _run(cfg, train__label_head=on, train__grad_accum=2, train__precision=precision)
        from tunesmith.runs import read_metrics

        runs[on] = [(m["step"], m.get("loss"), m.get("eval_loss")) for m in read_metrics(run_dir)
                    if "loss" in m or "eval_loss" in m]
    tol = 1e-4 if precision == "fp32" else 2e-2
    assert [s for s, *_ in runs[True]] == [s for s, *_ in runs[False]] and runs[True]
    for (_, a, ea), (_, b, eb) in zip(runs[True], runs[False]):
        for x, y in ((a, b), (ea, eb)):
            assert (x is None) == (y is None) and (x is None or abs(x - y) <= tol * max(1.0, abs(y))), (x, y)
