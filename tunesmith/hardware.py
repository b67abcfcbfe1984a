"""What the machine can do: precision choice, CPU threads, and a hardware summary for the manifest."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path


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


def training_attention(requested: str, max_length: int, precision: str = "fp32") -> str:
    """Attention kernel for training. On CPU, torch's sdpa (flash) backward was the largest single
    cost for short rows: eager ran LoRA SFT on SmolLM2 ~20% faster at ~92 tokens/row (bench/
    sft_throughput.py). Eager materialises [batch, heads, n, n] scores, so long rows keep sdpa.
    On a CUDA device with flash-attn installed and a bf16 run, FlashAttention-2: its varlen kernels
    train packed rows padding-free (no [n, n] mask, no attention across examples, from the
    restarting position ids)."""
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    if requested == "flash_attention_2" and not cuda:
        from tunesmith.errors import fail

        raise fail("model.attention=flash_attention_2 needs a CUDA GPU", "use model.attention=auto on this machine",
                   field="model.attention")
    if requested != "auto":
        return requested
    if cuda:
        return "flash_attention_2" if precision == "bf16" and importlib.util.find_spec("flash_attn") else "sdpa"
    return "eager" if max_length <= 1024 else "sdpa"


def training_kernels(requested: str) -> tuple[str, str]:
    """(kernels, why): Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU, and a fused linear
    cross-entropy that never materialises the logits) on a CUDA device; none on CPU, where Triton
    does not run."""
    import importlib.util

    import torch

    cuda, have = torch.cuda.is_available(), importlib.util.find_spec("liger_kernel") is not None
    if requested == "none":
        return "none", "set in config"
    if requested == "liger":
        from tunesmith.errors import fail

        if not cuda:
            raise fail("train.kernels=liger needs a CUDA GPU (Liger's kernels are Triton)",
                       "use train.kernels=auto (on only where a GPU is) or none", field="train.kernels")
        if not have:
            raise fail("train.kernels=liger but liger-kernel is not installed",
                       "pip install 'tunesmith[gpu]' (or liger-kernel)", field="train.kernels")
        return "liger", "set in config"
    if not cuda:
        return "none", "no CUDA device"
    if not have:
        return "none", "liger-kernel is not installed (pip install 'tunesmith[gpu]')"
    return "liger", "CUDA device and liger-kernel installed"


def hardware_info() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_bf16": cpu_has_fast_bf16(), "memory_gb": _mem_gb(), "cuda": torch.cuda.is_available()}
    if _threads is not None:  # the same dict the rechecks update, so the finished manifest lists them
        info["threads"] = _threads
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


# --------------------------------------------------------------------------- CPU threads
# torch splits each op over its intra-op (OpenMP) threads and waits at a barrier for the slowest.
# With as many threads as cores and one core taken by another process, every op waits for the thread
# the scheduler parked there: measured 0.31x of quiet throughput beside one `while True: pass` on 2
# cores (a fair share would be 0.5x), and 10-13 s instead of 1.5 s per quickstart step beside a
# nice-19 process (nice ranks threads only within one autogroup, i.e. terminal session: sched(7)).
# So tunesmith runs one thread per free core, re-measures while it trains or serves, and lets idle
# threads sleep instead of spinning on a core someone else needs.

# Seconds between re-measurements while training or serving: a process that starts beside 2-thread
# training slows every step until the recheck (a competitor arriving 12 s in cost 0.48x over the run
# with 10 s); a check is one read of /proc/stat.
RECHECK_S = 2.0
WINDOW_S = 0.25  # the first measurement: ~25 scheduler ticks per core at USER_HZ=100
REUSE_S = 30.0  # a sample younger than this starts the next choice's window instead of a new sleep
# Under contention the scheduler gives another process only part of what it asks for (2/3 of a core
# against our 2 threads on 2 cores), so its measured use understates its demand: a core counts as
# taken once other processes ran on it this share of the time.
TAKEN_AT = 0.4

_threads: dict | None = None  # the current choice, as the manifest records it (see use_threads)
_last: CpuSample | None = None  # where the next recheck's window starts
_started = 0.0  # when use_threads chose, for the times of later changes


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds spent on our cores by every process (`busy_s`) and by this one (`own_s`), at `at`."""

    busy_s: float
    own_s: float
    at: float


def cpu_sample(cpus: set[int]) -> CpuSample:
    t = os.times()  # all threads of this process; its finished children are not ours to count
    return CpuSample(busy_seconds(_read(Path("/proc/stat")), cpus), t.user + t.system, time.monotonic())


def busy_seconds(stat: str, cpus: set[int]) -> float:
    """CPU seconds spent busy on `cpus`, from the per-CPU lines of /proc/stat. Busy is user, nice,
    system, irq, softirq and steal (a hypervisor's other guests take the core as surely as a
    process); idle and iowait are not; guest time is already inside user. (psutil.cpu_times(percpu=True)
    reads the same lines but lists them by position, which an offline CPU shifts off the CPU numbers
    that the affinity mask uses.)"""
    ticks = 0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            f = [int(x) for x in rest.split()]
            ticks += f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)
    return ticks / _clock_ticks()


def others_busy(before: CpuSample, after: CpuSample) -> float:
    """Cores kept busy by other processes between two samples."""
    wall = after.at - before.at
    if wall <= 0:
        return 0.0
    return max(0.0, (after.busy_s - before.busy_s - (after.own_s - before.own_s)) / wall)


def choose_threads(cores: int, quota: float | None = None, others: float = 0.0) -> tuple[int, str]:
    """(intra-op threads, why) from the cores we may use, the cgroup quota in CPUs, and the cores
    other processes keep busy. Pure, so tests feed it readings."""
    limit, why = cores, f"{cores} cores"
    if quota is not None and quota < cores:
        # Threads beyond the quota are throttled each period, and the barrier then waits for them.
        limit, why = max(1, int(quota)), f"{cores} cores, cgroup quota {quota:g} CPUs"
    taken = int(others + 1 - TAKEN_AT)
    threads = max(1, min(limit, cores - taken))
    return threads, f"{why}, {others:.2f} busy with other processes"


def usable_cores() -> tuple[set[int], int]:
    """(logical CPUs this process may run on, physical cores among them). torch's default counts
    physical cores (hyperthreads share one core's arithmetic units) but ignores the affinity mask,
    so in a container limited to 2 CPUs of 64 it would start 32 threads."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = {_read(Path(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list")).strip() or str(c)
             for c in cpus}
    return cpus, len(cores)


def cgroup_quota(root: Path = Path("/sys/fs/cgroup"), membership: str | None = None) -> float | None:
    """CPUs the cgroup quota allows (this process's cgroup or a parent's, the smallest); None: none.
    `membership` is /proc/self/cgroup's text. joblib's loky reads the same files, but only at the
    mount root (a container's own cgroup) and rounds up; a systemd slice's CPUQuota sits deeper, so
    this walks the process's cgroup path up to the root."""
    found = []
    if membership is None:
        membership = _read(Path("/proc/self/cgroup"))
    for line in membership.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers and "cpu" not in controllers.split(","):
            continue
        # cgroup v2: one hierarchy, cpu.max; v1: the cpu controller's own, cfs_quota_us / cfs_period_us
        mount = root if not controllers else next((m for m in (root / controllers, root / "cpu") if m.is_dir()), None)
        if mount is None:
            continue
        here = mount / path.strip("/")
        for folder in (here, *here.parents):  # from our own cgroup up to the mount root
            if folder != mount and mount not in folder.parents:
                break
            text = (_read(folder / "cpu.max") if not controllers else
                    _read(folder / "cpu.cfs_quota_us") + " " + _read(folder / "cpu.cfs_period_us"))
            quota = parse_quota(text)
            if quota is not None:
                found.append(quota)
    return min(found, default=None)


def parse_quota(text: str) -> float | None:
    """'150000 100000' -> 1.5 CPUs; 'max 100000' (v2) or '-1 100000' (v1) or nothing -> None."""
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit() or int(parts[1]) == 0:
        return None
    return int(parts[0]) / int(parts[1])


def pick_threads(override: int = 0) -> dict:
    """Measure and choose; returns the record the manifest keeps. An explicit count (config, then
    OMP_NUM_THREADS as torchrun sets it for several processes) is kept as given, unmeasured."""
    global _last
    from tunesmith.errors import fail

    if override < 0:
        raise fail(f"train.threads is {override}", "use 0 (auto: the free cores) or a thread count",
                   field="train.threads")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not override and env.isdigit() and int(env) > 0:
        return {"threads": int(env), "why": "OMP_NUM_THREADS (environment)", "auto": False}
    if override:
        return {"threads": override, "why": "set in config (train.threads)", "auto": False}
    cpus, cores = usable_cores()
    quota = cgroup_quota()
    # A recent sample (an earlier run or load in this process) gives the window for free: no sleep.
    before = _last if _last is not None and WINDOW_S <= time.monotonic() - _last.at <= REUSE_S else None
    if before is None:
        before = cpu_sample(cpus)
        time.sleep(WINDOW_S)
    _last = cpu_sample(cpus)
    others = others_busy(before, _last)
    threads, why = choose_threads(cores, quota, others)
    window = round(_last.at - before.at, 2)
    return {"threads": threads, "why": f"auto: {why} (over {window} s)", "auto": True, "cores": cores,
            "cpus": len(cpus), "cgroup_quota": quota, "others_busy": round(others, 2), "rechecks": 0, "changes": []}


def use_threads(override: int = 0) -> dict:
    """Pick torch's intra-op thread count (see pick_threads) and set it; call once where a recipe or
    an inference session starts. The choice, the OpenMP wait policy and later changes (see
    recheck_threads) go into hardware_info(), hence into the run's manifest."""
    global _threads, _started
    import torch

    env = os.environ.get("OMP_WAIT_POLICY")
    # The wait policy is left alone: the thread count is what keeps a shared CPU from collapsing
    # (bench/results/shared_cpu.md: one thread beside a busy process ran at the same speed spinning
    # or sleeping), and PASSIVE cost 9-17% of quiet throughput here, a futex sleep at every barrier.
    policy = f"{env} (environment)" if env else "OpenMP default (spin briefly, then sleep)"
    _threads, _started = {**pick_threads(override), "omp_wait_policy": policy}, time.monotonic()
    torch.set_num_threads(_threads["threads"])
    return _threads


def recheck_threads() -> None:
    """Every RECHECK_S seconds, re-measure other processes' load over the time since the last check
    (our own CPU time subtracted, so no waiting window) and follow it. Costs one read of /proc/stat.
    Call it from the thread that runs the torch ops: OpenMP keeps the thread count per thread."""
    global _last
    record = _threads
    if record is None or not record["auto"] or _last is None or time.monotonic() - _last.at < RECHECK_S:
        return
    cpus, cores = usable_cores()
    sample = cpu_sample(cpus)
    others = others_busy(_last, sample)
    _last = sample
    threads, _ = choose_threads(cores, record["cgroup_quota"], others)
    record["rechecks"] += 1
    if threads != record["threads"]:
        import torch

        torch.set_num_threads(threads)
        record["changes"].append({"after_s": round(time.monotonic() - _started, 1), "threads": threads,
                                  "others_busy": round(others, 2)})
        record["threads"] = threads


def thread_rechecks():
    """A transformers TrainerCallback that runs recheck_threads() after every optimizer step."""
    from transformers import TrainerCallback

    class ThreadRechecks(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            recheck_threads()

    return ThreadRechecks()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
