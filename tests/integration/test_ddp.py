"""`tunesmith train` under `accelerate launch`: two CPU processes (gloo) train exactly like one.

Why the two runs must agree: accelerate hands each process whole per-device batches of one seeded
shuffle (rank 0 takes shuffled rows 0-3, rank 1 rows 4-7, then 8-11 and 12-15, ...; checked with a
recording collator, not the r, r+2, ... interleaving of torch's DistributedSampler), so a global
step of 2 x 4 rows holds the same rows as one process's batch of 8. The trainer gathers the count of
loss tokens over the processes and scales each process's summed loss by it (x processes, since DDP
averages gradients), so gradients and the logged loss are the token mean of the global batch, exact
even though the rows here differ in length (87-101 tokens) and each process pads to its own widest.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import tunesmith
from tunesmith import runs

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE_CONFIGS = ROOT / "configs" / "accelerate"


def _free_port() -> int:
    """A port for the rendezvous: other test runs on this machine may hold accelerate's 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    # One thread per process: two processes on a small CPU would otherwise oversubscribe it.
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


# --- the shipped accelerate configs, through accelerate's own loader and launch checks

def _launch_args(path: Path):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "tunesmith.cli", "train", "x.yaml"])
    return _validate_launch_command(args)  # what `accelerate launch` does with the file before starting anything


def test_the_documented_accelerate_configs_are_shipped():
    names = {p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")}
    assert {"ddp.yaml", "fsdp.yaml", "deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "multi-node.yaml"} <= names


@pytest.mark.parametrize("path", sorted(ACCELERATE_CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_config_passes_accelerates_own_checks(path, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    cfg = load_config_from_file(str(path))  # raises on unknown top-level keys
    assert isinstance(cfg, ClusterConfig)
    # Precision is tunesmith's train.precision; accelerate's would override an fp32 run.
    assert cfg.mixed_precision == "no"
    args, defaults, _ = _launch_args(path)
    kind = cfg.distributed_type.value
    if kind == "DEEPSPEED":
        from accelerate.utils import DeepSpeedPlugin

        assert args.use_deepspeed and args.zero_stage == int(path.stem[-1])  # deepspeed-zero2 / -zero3
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
        monkeypatch.setattr(os, "environ", {**os.environ, **env})
        plugin = DeepSpeedPlugin()  # built from the launcher's environment, as the trainer builds it
        ds = plugin.deepspeed_config
        assert ds["zero_optimization"]["stage"] == args.zero_stage
        # Left to the tunesmith config: a number here that differed would stop the run.
        assert ds["gradient_accumulation_steps"] == "auto" and ds["gradient_clipping"] == "auto"
        # ZeRO-3 must gather the sharded weights at the end, or no loadable adapter is written.
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] == (args.zero_stage == 3)
    elif kind == "FSDP":
        from accelerate.utils import FullyShardedDataParallelPlugin

        env = prepare_multi_gpu_env(args)
        monkeypatch.setattr(os, "environ", {**os.environ, **env})
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2
        assert "FULL_STATE_DICT" in str(plugin.state_dict_type)  # the trainer saves nothing for a sharded one
        assert plugin.cpu_ram_efficient_loading is False  # tunesmith loads the model before the trainer
    else:
        assert kind == "MULTI_GPU" and args.multi_gpu
        prepare_multi_gpu_env(args)
        if path.name == "multi-node.yaml":
            assert args.num_machines > 1 and args.main_process_ip and args.main_process_port
            assert args.num_processes % args.num_machines == 0  # num_processes counts every machine's


# --- the run directory, prepared once and shared by every process

_WORKER = r"""
import json, sys
from pathlib import Path
from tunesmith import runs
from tunesmith.config import dump_yaml, load_config
from tunesmith.errors import TunesmithError

tmp, rank = Path(sys.argv[1]), runs.is_main_process()
cfg = load_config({"name": "r", "output_dir": str(tmp / "runs"), "data": {"train": [str(tmp / "d.jsonl")]}})
out = {}
run_dir, resume = runs.prepare_run_dir(cfg)  # fresh
runs.append_metrics(run_dir, {"step": 1, "loss": 2.0})  # every process logs; only the main one writes
runs.barrier()
out["fresh"] = [str(run_dir), resume, len(runs.read_metrics(run_dir))]
runs.barrier()  # both have read before the main process changes the directory
if rank:  # the main process plays the crashed run: a checkpoint to resume
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    (run_dir / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
out["resume"] = [str(p) for p in runs.prepare_run_dir(cfg)]
if rank:
    runs.write_json(run_dir / "manifest.json", {"status": "completed"})
try:
    runs.prepare_run_dir(cfg)
    out["finished"] = "no error"
except TunesmithError as e:
    out["finished"] = str(e)
print("RESULT " + json.dumps(out), flush=True)
import torch.distributed as dist
runs.barrier()  # leave together: a peer exiting mid-teardown can abort gloo in the other process
dist.destroy_process_group()
"""


def test_run_dir_is_prepared_by_the_main_process_and_shared(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**_launcher_env(), "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})
             for r in (0, 1)]
    outs = [p.communicate(timeout=120)[0] for p in procs]  # a process left at a barrier would hang here
    results = []
    for p, out in zip(procs, outs):
        assert p.returncode == 0, (p.returncode, out[-3000:])
        results.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]))
    run_dir = str(tmp_path / "runs" / "r")
    assert results[0] == results[1]  # both processes got the main process's answer
    assert results[0]["fresh"] == [run_dir, None, 1]  # one metrics line, not one per process
    assert results[0]["resume"] == [run_dir, f"{run_dir}/checkpoints/checkpoint-4"]
    assert "finished run" in results[0]["finished"] and "overwrite=true" in results[0]["finished"]


# --- training: 2 processes x batch 4 against 1 process x batch 8

def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in runs.read_metrics(run_dir) if "loss" in r}


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, tiny_config, tiny_model_dir):
    base = copy.deepcopy(tiny_config)
    base["data"]["validation_fraction"] = 0.0  # train loss only: the comparison is about the training step
    base["train"].update(max_steps=4, eval_steps=0, save_steps=2)  # 4 steps of 8 rows: into the second epoch
    one = copy.deepcopy(base)
    one["name"], one["train"]["batch_size"] = "one", 8
    two = copy.deepcopy(base)
    two["name"], two["train"]["batch_size"] = "two", 4
    config_file = tmp_path / "two.yaml"
    config_file.write_text(yaml.safe_dump(two))

    one_dir = tunesmith.train(one, show_progress=False)

    # The shipped ddp.yaml, as a user runs it; on a machine without GPUs it starts gloo CPU processes.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIGS / "ddp.yaml"),
           "--num_processes", "2", "--main_process_port", str(_free_port()),
           "-m", "tunesmith.cli", "train", str(config_file)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_launcher_env(), cwd=tmp_path)
    seconds = time.time() - t0
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    two_dir = Path(two["output_dir"]) / "two"
    print(f"\n2-process accelerate launch: {seconds:.1f} s")

    # One metrics line per logged step: the other process's on_log writes nothing.
    rows = runs.read_metrics(two_dir)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert len([r for r in rows if "train_loss" in r]) == 1
    # Same rows in each global step: the non-padding tokens seen agree step by step.
    seen = {r["step"]: r["tokens_seen"] for r in runs.read_metrics(one_dir) if "loss" in r}
    assert {r["step"]: r["tokens_seen"] for r in rows if "loss" in r} == seen

    l1, l2 = _losses(one_dir), _losses(two_dir)
    print("loss, 1 process x 8: ", [round(l1[s], 6) for s in sorted(l1)])
    print("loss, 2 processes x 4:", [round(l2[s], 6) for s in sorted(l2)])
    assert abs(l1[4] - l1[1]) > 1e-2  # the curve moves, so agreement is not trivial
    # Measured gap ~1e-7 relative: float32 sums in another order (two partial sums plus an
    # all-reduce) and other padding widths. 1e-5 leaves room, yet other rows in a step, or the
    # mean of per-process means instead of the token mean, move the loss by ~1e-3 or more.
    for step in l1:
        assert l2[step] == pytest.approx(l1[step], rel=1e-5), step

    manifest = runs.read_manifest(two_dir)
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 4
    assert manifest["distributed"] == {"processes": 2, "global_batch": 8}
    assert "distributed" not in runs.read_manifest(one_dir)
    assert runs.last_checkpoint(two_dir).endswith("checkpoint-4")

    # One adapter, loadable, trained, and the same weights as the single-process run.
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert sorted(p.name for p in two_dir.iterdir() if p.is_dir()) == ["adapter", "checkpoints"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), two_dir / "adapter")
    loaded = {k: v for k, v in model.state_dict().items() if "lora_B" in k}
    assert loaded and all(v.abs().sum() > 0 for v in loaded.values())  # lora_B starts at zero: it trained
    a, b = load_file(one_dir / "adapter" / "adapter_model.safetensors"), load_file(two_dir / "adapter" /
                                                                                    "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
