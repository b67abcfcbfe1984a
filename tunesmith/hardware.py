"""What the machine can do: precision choice and a hardware summary for the manifest."""

from __future__ import annotations

import os
import platform
from functools import cache


@cache
def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16() -> bool:
    # AVX512-BF16 / AMX give native bf16 dot products: measured here bf16 matmul ran ~4x fp32.
    # Without them bf16 is emulated and slower than fp32, so auto picks fp32.
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(requested: str) -> tuple[str, str]:
    """(precision, why). Never fp16 on a CPU: it runs at ~2.6 GFLOP/s there (vs ~210 for fp32)."""
    import torch

    if requested != "auto":
        return requested, "set in config"
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16", "CUDA device supports bf16"
        return "fp32", "CUDA device without bf16"
    if cpu_has_fast_bf16():
        return "bf16", "CPU has AVX512-BF16/AMX"
    return "fp32", "CPU without native bf16"


def training_attention(requested: str, max_length: int) -> str:
    """Attention kernel for training. On CPU, torch's sdpa (flash) backward was the largest single
    cost for short rows: eager ran LoRA SFT on SmolLM2 ~20% faster at ~92 tokens/row (bench/
    sft_throughput.py). Eager materialises [batch, heads, n, n] scores, so long rows keep sdpa."""
    import torch

    if requested != "auto":
        return requested
    return "eager" if not torch.cuda.is_available() and max_length <= 1024 else "sdpa"


def hardware_info() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_bf16": cpu_has_fast_bf16(), "memory_gb": _mem_gb(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None
