from __future__ import annotations

import pytest
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


# --------------------------------------------------------------------------- CPU threads

@pytest.fixture
def keep_threads(monkeypatch):
    """Restore torch's thread count and the module's recorded choice after a test changes them."""
    before = torch.get_num_threads()
    monkeypatch.setattr(hardware, "_threads", None)
    monkeypatch.setattr(hardware, "_last", None)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, quota, others, expected", [
    (2, None, 0.0, 2),     # quiet: every core
    (2, None, 0.05, 2),    # background noise does not cost a thread
    (2, None, 1.0, 1),     # one core busy with another process
    (2, None, 0.67, 1),    # its share against our 2 threads under contention still marks the core taken
    (2, None, 2.0, 1),     # never fewer than one
    (1, None, 0.0, 1),     # affinity of one CPU
    (2, 1.5, 0.0, 1),      # cgroup quota of 1.5 CPUs: a second thread would be throttled
    (16, 4.0, 0.0, 4),
    (8, None, 2.0, 6),
])
def test_threads_follow_cores_quota_and_load(cores, quota, others, expected):
    threads, why = hardware.choose_threads(cores, quota, others)
    assert threads == expected
    assert f"{cores} cores" in why and f"{others:.2f} busy" in why


PROC_STAT = """cpu  300 0 30 700 10 0 0 0 0 0
cpu0 100 0 10 400 5 0 0 0 0 0
cpu1 200 0 20 300 5 0 0 0 0 0
intr 170223 0 0
"""


def test_busy_seconds_reads_our_cpus_from_proc_stat():
    ticks = hardware._clock_ticks()
    assert hardware.busy_seconds(PROC_STAT, {0, 1}) == pytest.approx(330 / ticks)
    assert hardware.busy_seconds(PROC_STAT, {1}) == pytest.approx(220 / ticks)  # iowait and idle are not busy
    assert hardware.busy_seconds("", {0}) == 0.0


def test_our_own_cpu_time_is_not_counted_as_other_load():
    before = hardware.CpuSample(busy_s=100.0, own_s=5.0, at=0.0)
    # 2 cores fully busy for 10 s, 10 s of it ours: others kept one core busy
    after = hardware.CpuSample(busy_s=120.0, own_s=15.0, at=10.0)
    assert hardware.others_busy(before, after) == pytest.approx(1.0)
    assert hardware.choose_threads(2, None, hardware.others_busy(before, after))[0] == 1
    # all of it ours: nobody else
    assert hardware.others_busy(before, hardware.CpuSample(120.0, 25.0, 10.0)) == 0.0


@pytest.mark.parametrize("text, cpus", [("150000 100000", 1.5), ("max 100000", None), ("-1 100000", None),
                                        ("", None), ("200000\n 100000\n", 2.0)])
def test_parse_quota(text, cpus):
    assert hardware.parse_quota(text) == cpus


def test_cgroup_quota_v2_takes_the_smallest_on_the_path(tmp_path):
    (tmp_path / "user.slice" / "session.scope").mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "user.slice" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "user.slice" / "session.scope" / "cpu.max").write_text("300000 100000\n")
    assert hardware.cgroup_quota(tmp_path, "0::/user.slice/session.scope\n") == 1.5
    assert hardware.cgroup_quota(tmp_path, "0::/\n") is None


def test_cgroup_quota_v1_in_a_container(tmp_path):
    # Without a cgroup namespace the path names the host's cgroup; the mount root is the container's.
    mount = tmp_path / "cpu,cpuacct"
    mount.mkdir()
    (mount / "cpu.cfs_quota_us").write_text("50000\n")
    (mount / "cpu.cfs_period_us").write_text("100000\n")
    assert hardware.cgroup_quota(tmp_path, "5:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n") == 0.5


def test_explicit_thread_counts_are_kept_unmeasured(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_sample", lambda cpus: pytest.fail("an explicit count needs no measurement"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert hardware.pick_threads(3) == {"threads": 3, "why": "set in config (train.threads)", "auto": False}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun sets it for several processes per machine
    assert hardware.pick_threads()["threads"] == 1
    assert hardware.pick_threads(2)["threads"] == 2  # the config wins


def test_negative_threads_are_refused():
    from tunesmith.errors import TunesmithError

    with pytest.raises(TunesmithError) as info:
        hardware.pick_threads(-1)
    assert info.value.problems[0].field == "train.threads" and "-1" in str(info.value)


def test_rechecks_follow_other_processes(monkeypatch, keep_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(hardware, "usable_cores", lambda: ({0, 1}, 2))
    monkeypatch.setattr(hardware, "cgroup_quota", lambda: None)
    monkeypatch.setattr(hardware, "WINDOW_S", 0.0)
    t = hardware.time.monotonic() - 100  # samples taken in the past, so each recheck is due
    samples = iter([hardware.CpuSample(0.0, 0.0, t), hardware.CpuSample(0.5, 0.5, t + 0.25),  # quiet at first
                    hardware.CpuSample(20.5, 10.5, t + 10.25),   # then another process held one core for 10 s
                    hardware.CpuSample(40.5, 30.5, t + 20.25)])  # and left
    monkeypatch.setattr(hardware, "cpu_sample", lambda cpus: next(samples))
    record = hardware.use_threads()
    assert record["threads"] == 2 and torch.get_num_threads() == 2 and record["why"].startswith("auto: 2 cores")
    assert hardware.hardware_info()["threads"] is record  # what the manifest shows, rechecks included
    hardware.recheck_threads()
    assert record["threads"] == 1 and torch.get_num_threads() == 1
    hardware.recheck_threads()
    assert record["threads"] == 2 and torch.get_num_threads() == 2
    assert record["rechecks"] == 2 and [c["threads"] for c in record["changes"]] == [1, 2]


def test_rechecks_wait_for_their_interval(monkeypatch, keep_threads):
    monkeypatch.setattr(hardware, "_threads", {"threads": 2, "auto": True, "cgroup_quota": None, "rechecks": 0,
                                               "changes": []})
    monkeypatch.setattr(hardware, "_last", hardware.CpuSample(0.0, 0.0, hardware.time.monotonic()))
    monkeypatch.setattr(hardware, "cpu_sample", lambda cpus: pytest.fail("measured before RECHECK_S passed"))
    hardware.recheck_threads()
    assert hardware._threads["rechecks"] == 0


def test_config_takes_a_thread_count():
    from tunesmith.config import load_config
    from tunesmith.errors import TunesmithError

    assert load_config({"data": {"train": "/abs/t.jsonl"}}).train.threads == 0  # auto
    assert load_config({"data": {"train": "/abs/t.jsonl"}}, ["train.threads=3"]).train.threads == 3
    with pytest.raises(TunesmithError) as info:
        load_config({"data": {"train": "/abs/t.jsonl"}}, ["train.threads=all"])
    assert info.value.problems[0].field == "train.threads"


def test_a_training_run_records_its_thread_choice(tiny_config, keep_threads, monkeypatch):
    import json

    import tunesmith

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg = {**tiny_config, "train": {**tiny_config["train"], "eval_steps": 0, "max_steps": 2},
           "data": {**tiny_config["data"], "validation_fraction": 0.0}}
    run_dir = tunesmith.train(cfg, show_progress=False)
    threads = json.loads((run_dir / "manifest.json").read_text())["hardware"]["threads"]
    assert threads["auto"] and threads["why"].startswith("auto: ") and 1 <= threads["threads"] <= threads["cores"]
    assert "omp_wait_policy" in threads and isinstance(threads["changes"], list)

    run_dir = tunesmith.train({**cfg, "name": "one", "train": {**cfg["train"], "threads": 1}}, show_progress=False)
    threads = json.loads((run_dir / "manifest.json").read_text())["hardware"]["threads"]
    assert threads["threads"] == 1 and threads["why"] == "set in config (train.threads)"
    assert torch.get_num_threads() == 1


def _gpu(monkeypatch, cuda: bool, installed: set[str]):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in installed else (None if name in
                                                                             ("liger_kernel", "flash_attn")
                                                                             else real(name, *a)))


@pytest.mark.parametrize("cuda,installed,expected", [
    (False, {"liger_kernel"}, "none"),          # never on CPU, even when installed
    (True, set(), "none"),                      # a GPU without the library: the plain path
    (True, {"liger_kernel"}, "liger"),
])
def test_liger_kernels_are_on_only_on_a_gpu_with_the_library(monkeypatch, cuda, installed, expected):
    _gpu(monkeypatch, cuda, installed)
    kernels, why = hardware.training_kernels("auto")
    assert kernels == expected and why
    assert hardware.training_kernels("none")[0] == "none"


@pytest.mark.parametrize("cuda,installed", [(False, {"liger_kernel"}), (True, set())])
def test_asking_for_liger_where_it_cannot_run_is_a_clear_error(monkeypatch, cuda, installed):
    from tunesmith.errors import TunesmithError

    _gpu(monkeypatch, cuda, installed)
    with pytest.raises(TunesmithError, match="train.kernels=liger") as e:
        hardware.training_kernels("liger")
    assert e.value.problems[0].field == "train.kernels"


@pytest.mark.parametrize("cuda,installed,precision,expected", [
    (False, {"flash_attn"}, "bf16", "eager"),
    (True, {"flash_attn"}, "bf16", "flash_attention_2"),
    (True, {"flash_attn"}, "fp32", "sdpa"),     # FlashAttention runs in half precision only
    (True, set(), "bf16", "sdpa"),
])
def test_auto_attention_picks_flash_attention_only_where_it_runs(monkeypatch, cuda, installed, precision, expected):
    _gpu(monkeypatch, cuda, installed)
    assert hardware.training_attention("auto", 256, precision) == expected


def test_flash_attention_on_a_cpu_is_refused(monkeypatch):
    from tunesmith.errors import TunesmithError

    _gpu(monkeypatch, False, {"flash_attn"})
    with pytest.raises(TunesmithError, match="needs a CUDA GPU"):
        hardware.training_attention("flash_attention_2", 256, "bf16")
