"""Invariant: `kill -9` mid-run, then the same command resumes and ends where an uninterrupted run ends.

The killed run is a real `tunesmith train` process; it is killed as soon as a checkpoint exists,
while training goes on. The resumed run must continue from that checkpoint (same data order, same
LR schedule) and end with the same loss curve and the same adapter weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunesmith.runs import read_manifest, read_metrics

STEPS, SAVE_EVERY = 60, 10


def _config(tmp_path: Path, tiny_model_dir, tiny_data, name: str) -> Path:
    cfg = {"name": name, "output_dir": str(tmp_path / "runs"), "seed": 11,
           "model": {"name": str(tiny_model_dir)},
           "data": {"train": [str(tiny_data)], "max_length": 256, "cache": False},
           "train": {"max_steps": STEPS, "batch_size": 2, "learning_rate": 5e-3, "logging_steps": 1,
                     "save_steps": SAVE_EVERY, "save_total_limit": 2, "precision": "fp32"},
           "lora": {"r": 4, "alpha": 8, "dropout": 0.1}}  # dropout on: the RNG state must resume too
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "train", str(config), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, tiny_data):
    straight = _config(tmp_path, tiny_model_dir, tiny_data, "straight")
    assert _train(straight).wait(timeout=600) == 0

    crashy = _config(tmp_path, tiny_model_dir, tiny_data, "crashy")
    run_dir = tmp_path / "runs" / "crashy"
    proc = _train(crashy)
    deadline = time.time() + 600
    while not (run_dir / "checkpoints" / f"checkpoint-{SAVE_EVERY}" / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-run
    proc.wait()
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "running" and not (run_dir / "adapter").exists()
    killed_at = max(m["step"] for m in read_metrics(run_dir))
    if killed_at >= STEPS:
        pytest.fail("the run finished before the kill landed; raise STEPS")

    resumed = _train(crashy)
    out = resumed.communicate(timeout=600)[0].decode()
    assert resumed.returncode == 0, out
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "completed" and "checkpoint-" in manifest["resumed_from"]

    a = {m["step"]: m["loss"] for m in read_metrics(tmp_path / "runs" / "straight") if "loss" in m}
    b = {m["step"]: m["loss"] for m in read_metrics(run_dir) if "loss" in m}
    assert sorted(b) == list(range(1, STEPS + 1))  # no step twice, none missing
    for step in range(1, STEPS + 1):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), f"loss differs at step {step}"
    wa = load_file(tmp_path / "runs" / "straight" / "adapter" / "adapter_model.safetensors")
    wb = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-6)
