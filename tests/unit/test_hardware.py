from __future__ import annotations

import torch

from tunesmith import hardware


def test_explicit_precision_is_kept():
    assert hardware.resolve_precision("fp32") == ("fp32", "set in config")
    assert hardware.resolve_precision("bf16")[0] == "bf16"


def test_auto_follows_the_cpu_flags(monkeypatch):
    if torch.cuda.is_available():
        return  # auto follows the GPU there; covered by the CUDA branch
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert hardware.resolve_precision("auto")[0] == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    assert hardware.resolve_precision("auto") == ("fp32", "CPU without native bf16")


def test_hardware_info_has_the_basics():
    info = hardware.hardware_info()
    assert info["cpu_count"] >= 1 and "torch_threads" in info and "cuda" in info
