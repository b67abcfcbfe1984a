"""train.launcher: ray: a local Ray instance on loopback, 2 CPU workers x batch 4, trains like one
process x batch 8 (the same check as test_ddp.py does for `accelerate launch`)."""

from __future__ import annotations

import copy
import os

import pytest

import tunesmith
from tunesmith import runs

pytest.importorskip("ray.train")


def _losses(run_dir):
    return {r["step"]: r["loss"] for r in runs.read_metrics(run_dir) if "loss" in r}


def test_two_ray_workers_train_like_one_process(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two workers on a small CPU would otherwise oversubscribe it
    import tempfile

    short = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's unix sockets allow 107-byte paths only
    monkeypatch.setenv("RAY_TMPDIR", short)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tunesmith.__path__[0].rsplit("/", 1)[0]),
                                                      os.environ.get("PYTHONPATH", "")]))
    base = copy.deepcopy(tiny_config)
    base["data"]["validation_fraction"] = 0.0
    base["train"].update(max_steps=4, eval_steps=0, save_steps=2)
    one = copy.deepcopy(base)
    one["name"], one["train"]["batch_size"] = "one", 8
    two = copy.deepcopy(base)
    two["name"], two["train"]["batch_size"] = "ray", 4
    two["train"].update(launcher="ray", workers=2)
    one_dir = tunesmith.train(one, show_progress=False)
    two_dir = tunesmith.train(two, show_progress=False)
    assert two_dir == (tmp_path / "runs" / "ray").resolve() or two_dir.name == "ray"
    rows = runs.read_metrics(two_dir)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]  # one writer: rank 0
    seen = {r["step"]: r["tokens_seen"] for r in runs.read_metrics(one_dir) if "loss" in r}
    assert {r["step"]: r["tokens_seen"] for r in rows if "loss" in r} == seen  # the same rows per global step
    l1, l2 = _losses(one_dir), _losses(two_dir)
    print("\nloss, 1 process x 8:", [round(l1[s], 6) for s in sorted(l1)])
    print("loss, 2 Ray workers x 4:", [round(l2[s], 6) for s in sorted(l2)])
    assert abs(l1[4] - l1[1]) > 1e-2
    for step in l1:
        assert l2[step] == pytest.approx(l1[step], rel=1e-5), step
    manifest = runs.read_manifest(two_dir)
    assert manifest["status"] == "completed" and manifest["distributed"] == {"processes": 2, "global_batch": 8}
    assert (two_dir / "adapter" / "adapter_config.json").is_file()
