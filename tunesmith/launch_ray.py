"""`train.launcher: ray`: the run on Ray Train (TorchTrainer), one worker process per train.workers.

Ray starts the processes (on a cluster, or on this machine when train.ray_address is unset), sets up
torch.distributed between them (gloo on CPU, NCCL on GPUs) and the variables torchrun would set
(RANK, WORLD_SIZE, LOCAL_RANK, ...). Each worker then runs the recipe exactly as under `accelerate
launch`: accelerate sees the initialised process group, shards each global batch over the workers, and
only rank 0 writes the run directory (tunesmith/runs.py), which must be on storage all workers see.
So a Ray run trains like one process with the same global batch (tests/integration/test_ray.py).
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import fail


def _worker(config: dict) -> None:
    """Runs in each Ray worker process."""
    from tunesmith.config import load_config
    from tunesmith.recipes import recipe

    cfg = load_config(config["cfg"])
    recipe(cfg.recipe)(cfg, show_progress=False)  # rank 0 writes the run directory, as under accelerate


def train(cfg, show_progress: bool = True) -> Path:
    """Train `cfg` (auto values already resolved) on Ray; returns the run directory."""
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise fail("train.launcher is ray, and Ray Train is not installed",
                   "pip install 'ray[train]' (or 'tunesmith[ray]'), or use train.launcher: local") from None
    import dataclasses

    import torch

    from tunesmith.config import to_dict
    from tunesmith.runs import run_dir_for

    raw = to_dict(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, launcher="local")))
    raw.pop("config_path", None)
    started = not ray.is_initialized()
    if started:  # a local instance for this run: as many CPUs as workers, nothing on the network
        ray.init(address=cfg.train.ray_address, num_cpus=None if cfg.train.ray_address else cfg.train.workers,
                 include_dashboard=False, log_to_driver=show_progress, configure_logging=False)
    run_dir = run_dir_for(cfg).resolve()
    try:
        trainer = TorchTrainer(
            _worker, train_loop_config={"cfg": raw},
            scaling_config=ScalingConfig(num_workers=cfg.train.workers, use_gpu=torch.cuda.is_available(),
                                         resources_per_worker={"CPU": 1}),
            # Ray's own results (reports, its checkpoints) beside the run directory, never in ~/ray_results
            run_config=RunConfig(name=cfg.name, storage_path=str(run_dir.parent / "ray_results")))
        result = trainer.fit()
    finally:
        if started:
            ray.shutdown()
    if result.error:
        raise fail(f"the Ray run failed: {result.error}",
                   f"see the workers' logs under {run_dir.parent / 'ray_results'}")
    from tunesmith.runs import read_manifest

    if (read_manifest(run_dir) or {}).get("status") != "completed":
        raise fail(f"the Ray run ended without completing {run_dir}",
                   f"see the workers' logs under {run_dir.parent / 'ray_results'}")
    return run_dir
