"""DP-SGD LoRA SFT (recipes/dp.py) on the tiny random Llama: it trains, per-sample gradients are each
row's own and clipped, and the privacy accounting moves with the steps taken."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors.torch import load_file

import tunesmith
from tunesmith.errors import TunesmithError
from tunesmith.recipes import dp


def _config(tiny_config, **privacy) -> dict:
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in tiny_config.items()}
    cfg["privacy"] = {"enabled": True, **privacy}
    return cfg


def test_dp_run_trains_the_adapter_and_reports_its_budget(tiny_config, tiny_model_dir):
    # Expected batch 4 drawn by Poisson sampling, run as physical batches of at most 2 rows.
    cfg = _config(tiny_config, target_epsilon=8.0, delta=1e-5, max_grad_norm=1.0)
    cfg["train"].update(batch_size=2, grad_accum=2, max_steps=4, eval_steps=2, logging_steps=2)
    run_dir = dp.run(tunesmith.load_config(cfg), show_progress=False)

    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)  # the base is never saved (nor trained)
    assert all(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)  # B starts at zero

    manifest = json.loads((run_dir / "manifest.json").read_text())
    result, privacy = manifest["result"], manifest["result"]["privacy"]
    assert manifest["status"] == "completed" and result["steps"] == 4
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["eval_loss"])
    # 18 training rows (24 less a quarter held out), logical batch 4: 5 batches per epoch.
    assert privacy["sample_rate"] == pytest.approx(1 / 5) and privacy["accountant"] == "rdp"
    assert privacy["delta"] == 1e-5 and privacy["max_grad_norm"] == 1.0 and privacy["steps"] == 4
    # The noise was searched so that exactly the planned steps spend the target (search tolerance 0.01).
    assert privacy["noise_multiplier"] > 0 and 7.9 < privacy["epsilon"] <= 8.0

    from tunesmith.runs import read_metrics

    metrics = read_metrics(run_dir)
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 4]  # the first step, every logging_steps, the last
    assert steps[-1]["epsilon"] == pytest.approx(privacy["epsilon"])
    assert [m["step"] for m in metrics if "eval_loss" in m] == [2, 4]

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")
    loaded = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert loaded and any(p.abs().sum() > 0 for p in loaded.values())


def _rows(tokenizer, n: int) -> list[dict]:
    """n rows of different lengths, the first half of each row masked out of the loss like a prompt."""
    rows = []
    for i in range(n):
        ids = tokenizer(f"Row {i}: " + "word " * (3 + 4 * i))["input_ids"]
        labels = [-100] * (len(ids) // 2) + ids[len(ids) // 2:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def _lora_model(tiny_model_dir, tiny_config):
    from transformers import AutoModelForCausalLM

    from tunesmith.models import adapters

    torch.manual_seed(0)
    model = adapters.apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir), "lora",
                           tunesmith.load_config(tiny_config).lora)  # r 4, dropout 0
    with torch.no_grad():  # B starts at zero, which would make every gradient of A zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    return model


def _dp_step(model, rows, tokenizer, max_grad_norm: float, lr: float = 0.1):
    """One DP-SGD step with plain SGD and no noise; every row is drawn (sample rate 1: the loader's
    batch is the whole dataset). Returns the DP optimizer, its batch and the hooks."""
    from torch.utils.data import DataLoader

    from tunesmith.recipes.common import PadCollator

    loader = DataLoader(rows, batch_size=len(rows), collate_fn=PadCollator(tokenizer.pad_token_id))
    sgd = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    _, hooks, optimizer, dp_loader, noise = dp.make_private(
        model, sgd, loader, noise_multiplier=0.0, target_epsilon=8.0, delta=1e-5, max_grad_norm=max_grad_norm,
        steps=1)
    assert noise == 0.0
    batch = next(iter(dp_loader))
    assert len(batch["input_ids"]) == len(rows)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    dp.example_losses(logits, batch["labels"]).mean().backward()
    optimizer.step()
    return optimizer, batch, hooks


def test_per_sample_gradients_are_each_rows_own_and_unclipped_dp_sgd_is_plain_sgd(tiny_model_dir, tiny_config,
                                                                                 tokenizer):
    rows = _rows(tokenizer, 4)
    model = _lora_model(tiny_model_dir, tiny_config)
    plain = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer, _, hooks = _dp_step(model, rows, tokenizer, max_grad_norm=1e6)

    # Each per-sample gradient equals the gradient of that row alone, unpadded: the loss of a row is
    # its own mean over its tokens, and padding contributes nothing.
    lora = [(n, p) for n, p in plain.named_parameters() if p.requires_grad]
    dp_params = dict(model.named_parameters())
    for i, row in enumerate(rows):
        plain.zero_grad()
        ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
        dp.example_losses(plain(input_ids=ids).logits, labels).mean().backward()
        for n, p in lora:
            torch.testing.assert_close(dp_params[n].grad_sample[i], p.grad, rtol=1e-4, atol=1e-6)

    # With no noise and a clip no gradient reaches, the DP step is plain SGD on the batch's mean loss.
    from tunesmith.recipes.common import PadCollator

    plain.zero_grad()
    batch = PadCollator(tokenizer.pad_token_id)(rows)
    dp.example_losses(plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                      batch["labels"]).mean().backward()
    torch.optim.SGD([p for _, p in lora], lr=0.1).step()
    after_plain = dict(plain.named_parameters())
    changed = 0
    for n, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), after_plain[n].detach(), rtol=1e-4, atol=1e-6)
            changed += not torch.equal(p.detach(), before[n])
        else:
            assert torch.equal(p.detach(), before[n]), f"frozen base weight {n} changed"
    assert changed == len(lora)
    hooks.cleanup()


def test_every_per_sample_gradient_is_clipped_to_max_grad_norm(tiny_model_dir, tiny_config, tokenizer):
    rows, clip = _rows(tokenizer, 4), 1e-3
    model = _lora_model(tiny_model_dir, tiny_config)
    optimizer, batch, hooks = _dp_step(model, rows, tokenizer, max_grad_norm=clip)
    params = optimizer.params
    # The raw per-sample gradients, one row per example across all LoRA tensors.
    per_sample = torch.cat([p.grad_sample.reshape(len(rows), -1) for p in params], dim=1)
    norms = per_sample.norm(dim=1)
    assert (norms > 10 * clip).all(), norms  # so clipping has work to do on every row
    factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    clipped = per_sample * factors[:, None]
    assert (clipped.norm(dim=1) <= clip * (1 + 1e-5)).all()
    # What the optimizer applied is the mean of the clipped rows (sum / expected batch of 4).
    applied = torch.cat([p.grad.reshape(-1) for p in params])
    torch.testing.assert_close(applied, clipped.sum(0) / len(rows), rtol=1e-4, atol=1e-9)
    assert applied.norm() <= clip * (1 + 1e-5)
    hooks.cleanup()


def test_epsilon_grows_with_every_step_as_the_accountant_computes(tiny_config):
    from opacus.accountants import RDPAccountant

    cfg = _config(tiny_config, noise_multiplier=1.0, delta=1e-5)
    cfg["train"].update(max_steps=3, eval_steps=0)
    cfg["data"]["validation_fraction"] = 0.0
    run_dir = tunesmith.train(cfg, show_progress=False)  # through sft's dispatch to the DP recipe

    from tunesmith.runs import read_metrics

    eps = [m["epsilon"] for m in read_metrics(run_dir) if "loss" in m]
    assert len(eps) == 3 and all(a < b for a, b in zip(eps, eps[1:])), eps
    # 24 rows in logical batches of 4: sample rate 1/6; step k has spent what RDP gives k such steps.
    for k, e in enumerate(eps, start=1):
        accountant = RDPAccountant()
        accountant.history = [(1.0, 1 / 6, k)]
        assert e == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-6)
    privacy = json.loads((run_dir / "manifest.json").read_text())["result"]["privacy"]
    assert privacy["epsilon"] == pytest.approx(eps[-1]) and privacy["noise_multiplier"] == 1.0
    assert privacy["target_epsilon"] is None  # the noise was given, not searched


def test_a_step_that_draws_no_rows_is_still_a_noised_counted_step(tiny_config, monkeypatch):
    # Poisson sampling can draw nobody; force it on the very first draw (the hardest case: opacus has
    # not seen a batch yet, so its stand-in is a list, not a dict).
    from opacus.accountants import RDPAccountant
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    real_iter = UniformWithReplacementSampler.__iter__

    def first_draw_empty(self):
        yield []
        yield from real_iter(self)

    monkeypatch.setattr(UniformWithReplacementSampler, "__iter__", first_draw_empty)
    cfg = _config(tiny_config, noise_multiplier=1.0)
    cfg["train"].update(max_steps=2, eval_steps=0)
    run_dir = dp.run(tunesmith.load_config(cfg), show_progress=False)

    from tunesmith.runs import read_metrics

    rows = [m for m in read_metrics(run_dir) if "epsilon" in m]
    assert [m["step"] for m in rows] == [1, 2] and rows[0]["loss"] is None and rows[1]["loss"] > 0
    accountant = RDPAccountant()
    accountant.history = [(1.0, 1 / 5, 2)]  # both steps spent budget
    assert rows[1]["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-6)
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert all(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)


def test_an_unfinished_dp_run_is_not_resumed(tiny_config, tmp_path):
    cfg = _config(tiny_config)
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(TunesmithError, match="cannot be resumed.*overwrite=true"):
        dp.run(tunesmith.load_config(cfg), show_progress=False)


def test_dp_refuses_what_its_loop_does_not_do(tiny_config, tmp_path):
    cfg = _config(tiny_config)
    cfg["train"].update(gradient_checkpointing=True)
    cfg["lora"].update(use_dora=True)
    with pytest.raises(TunesmithError) as e:
        dp.run(tunesmith.load_config(cfg), show_progress=False)
    assert "train.gradient_checkpointing" in str(e.value) and "use_dora=false" in str(e.value)
    assert not (tmp_path / "runs" / "tiny").exists(), "a refused run leaves no run directory behind"


def test_dp_trains_on_the_rows_sft_and_validate_accept(tiny_config):
    # recipes.KINDS["sft"] takes classification rows (text -> label tasks); the DP path once prepared
    # its data with chat rows only, so it refused what `tunesmith validate` and plain SFT accept.
    from pathlib import Path

    rows = Path(__file__).resolve().parents[2] / "examples" / "classify" / "sentiment.jsonl"
    cfg = _config(tiny_config)
    cfg["data"].update(train=[str(rows)], validation_fraction=0.0)
    cfg["train"].update(max_steps=1, eval_steps=0)
    run_dir = tunesmith.train(cfg, show_progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["privacy"]["steps"] == 1


def test_validate_reports_what_a_dp_run_would_refuse(tiny_config, tmp_path, capsys):
    """`tunesmith validate` runs the same refusals as DP training: config-only ones (config checks)
    and an unfinished DP run directory, which cannot resume (recipes.preflight)."""
    import yaml

    from tunesmith import cli

    cfg = _config(tiny_config)
    cfg["data"]["validation_fraction"] = 0.0
    cfg["train"].update(gradient_checkpointing=True, eval_steps=0)
    path = tmp_path / "dp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["validate", str(path)]) == 2
    assert "train.gradient_checkpointing" in capsys.readouterr().err

    cfg["train"]["gradient_checkpointing"] = False
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running"}))
    assert cli.main(["validate", str(path)]) == 2
    assert "cannot be resumed" in capsys.readouterr().err
