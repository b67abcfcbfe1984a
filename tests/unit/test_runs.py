"""The run directory's policies: never overwrite a finished run silently, resume an unfinished one."""

from __future__ import annotations

import pytest

from tunesmith import runs
from tunesmith.config import load_config
from tunesmith.errors import TunesmithError


def _cfg(tmp_path, **over):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n')
    return load_config({"name": "r", "output_dir": str(tmp_path / "runs"), "data": {"train": [str(data)]}, **over})


def test_new_run_dir_is_created(tmp_path):
    run_dir, resume = runs.prepare_run_dir(_cfg(tmp_path))
    assert run_dir.is_dir() and resume is None and (run_dir / "metrics.jsonl").exists()


def test_finished_run_is_refused_then_replaced_with_overwrite(tmp_path):
    run_dir, _ = runs.prepare_run_dir(_cfg(tmp_path))
    runs.write_json(run_dir / "manifest.json", {"status": "completed"})
    (run_dir / "marker").write_text("x")
    with pytest.raises(TunesmithError, match="overwrite=true"):
        runs.prepare_run_dir(_cfg(tmp_path))
    run_dir2, _ = runs.prepare_run_dir(_cfg(tmp_path, overwrite=True))
    assert run_dir2 == run_dir and not (run_dir / "marker").exists()


def test_unfinished_run_resumes_from_the_newest_complete_checkpoint(tmp_path):
    run_dir, _ = runs.prepare_run_dir(_cfg(tmp_path))
    for step, state in ((2, "{}"), (10, "{}"), (12, None), (14, '{"global_step": 1')):
        ck = run_dir / "checkpoints" / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        if state is not None:  # 12: killed before its state was written; 14: killed while writing it
            (ck / "trainer_state.json").write_text(state)
    _, resume = runs.prepare_run_dir(_cfg(tmp_path))
    assert resume.endswith("checkpoint-10")  # numeric order, and the half-written 12 is ignored


def test_metrics_round_trip(tmp_path):
    run_dir, _ = runs.prepare_run_dir(_cfg(tmp_path))
    runs.append_metrics(run_dir, {"step": 1, "loss": 2.5})
    runs.append_metrics(run_dir, {"step": 2, "loss": 2.0})
    assert [m["loss"] for m in runs.read_metrics(run_dir)] == [2.5, 2.0]


def test_versions_name_the_stack():
    v = runs.versions()
    assert v["torch"] and v["transformers"] and v["peft"] and v["tunesmith"] == "0.1.0"


def test_resuming_with_a_changed_config_is_refused(tmp_path):
    from tunesmith.config import dump_yaml

    cfg = _cfg(tmp_path)
    run_dir, _ = runs.prepare_run_dir(cfg)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    ck = run_dir / "checkpoints" / "checkpoint-4"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text("{}")
    runs.prepare_run_dir(_cfg(tmp_path))  # same config: resumes
    changed = _cfg(tmp_path, train={"learning_rate": 1e-3})
    with pytest.raises(TunesmithError, match="differs in: train.learning_rate"):
        runs.prepare_run_dir(changed)


def test_metrics_are_trimmed_to_the_resumed_step_and_emptied_on_a_fresh_start(tmp_path):
    run_dir, _ = runs.prepare_run_dir(_cfg(tmp_path))
    for step in (2, 4, 6, 8):
        runs.append_metrics(run_dir, {"step": step, "loss": 1.0})
    ck = run_dir / "checkpoints" / "checkpoint-4"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text("{}")
    _, resume = runs.prepare_run_dir(_cfg(tmp_path))
    assert resume.endswith("checkpoint-4") and [m["step"] for m in runs.read_metrics(run_dir)] == [2, 4]
    import shutil

    shutil.rmtree(run_dir / "checkpoints")
    runs.prepare_run_dir(_cfg(tmp_path))
    assert runs.read_metrics(run_dir) == []
