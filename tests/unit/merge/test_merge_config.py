"""The merge config: typed loading with YAML lines and did-you-mean, range and cross-field checks
collected together, paths relative to the file; the parents checked on disk with their keys."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.merge.config import MergeConfig, describe, load_merge_config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(e: pytest.ExceptionInfo) -> dict[str, str]:
    """{field: 'line: problem (fix)'}, several problems of one field joined by ' | '."""
    out: dict[str, str] = {}
    for p in e.value.problems:
        text = f"{p.line}: {p.problem} ({p.fix})"
        out[p.field] = f"{out[p.field]} | {text}" if p.field in out else text
    return out


def test_a_valid_config_resolves_paths_against_its_folder(tmp_path):
    path = write(tmp_path / "merges" / "skills.yaml", """
        kind: adapters
        method: dare_ties
        density: 0.7
        parents:
          - path: ../runs/a
            eval_suite: suite-a.yaml
            tolerance: 0.02
            metrics: [records/json_match]
          - path: /abs/runs/b
            weight: 0.5
        gate:
          limit: 10
    """)
    cfg = load_merge_config(path)
    assert isinstance(cfg, MergeConfig) and cfg.name == "skills" and cfg.output_dir == "runs"
    assert cfg.parents[0].path == str(tmp_path / "runs" / "a") and cfg.parents[1].path == "/abs/runs/b"
    assert cfg.parents[0].eval_suite == str(tmp_path / "merges" / "suite-a.yaml")
    assert cfg.parents[1].weight == 0.5 and cfg.parents[1].eval_suite is None and cfg.gate.limit == 10
    assert cfg.config_path == str(path.resolve())
    assert load_merge_config(path, ["method=ties", "density=1.0"]).method == "ties"


def test_unknown_keys_get_a_did_you_mean_with_their_lines(tmp_path):
    path = write(tmp_path / "m.yaml", """
        methd: ties
        parents:
          - path: a
            tolerence: 0.1
          - path: b
    """)
    with pytest.raises(TunesmithError) as e:
        load_merge_config(path)
    found = problems(e)
    assert "did you mean 'method'" in found["methd"] and found["methd"].startswith("1:")
    assert "did you mean 'parents[0].tolerance'" in found["parents[0].tolerence"]
    assert found["parents[0].tolerence"].startswith("4:") and str(path) in str(e.value)


def test_range_and_cross_field_problems_are_reported_together(tmp_path):
    path = write(tmp_path / "m.yaml", """
        kind: adapters
        method: slerp
        density: 1.5
        base: smollm2-135m-instruct
        svd_rank: 0
        parents:
          - path: a
            tolerance: -1
            weight: 0
            metrics: [justatask]
    """)
    with pytest.raises(TunesmithError) as e:
        load_merge_config(path)
    found = problems(e)
    assert "not a merge method for kind: adapters" in found["method"] and "kind: models" in found["method"]
    assert "at least two" in found["parents"]
    assert "outside (0, 1]" not in found.get("density", "")  # slerp reads no density
    assert "trained on" in found["base"] and "remove base" in found["base"]
    assert "not a rank" in found["svd_rank"] and "negative" in found["parents[0].tolerance"]
    assert "leaves this parent out" in found["parents[0].weight"]
    assert "no eval_suite" in found["parents[0].metrics"] and "not 'task/metric'" in found["parents[0].metrics"]
    assert found["parents[0].tolerance"].startswith("8:")


def test_method_settings_for_each_kind(tmp_path):
    adapters = {"kind": "adapters", "parents": [{"path": "a"}, {"path": "b"}]}
    with pytest.raises(TunesmithError, match=r"density: 0.0 is outside \(0, 1\]"):
        load_merge_config({**adapters, "method": "ties", "density": 0.0})
    with pytest.raises(TunesmithError, match="does not factor by SVD"):
        load_merge_config({**adapters, "method": "cat", "svd_rank": 8})
    assert load_merge_config({**adapters, "method": "magnitude_prune_svd", "svd_rank": 8}).svd_rank == 8
    models = {"kind": "models", "parents": [{"path": "a"}, {"path": "b"}]}
    with pytest.raises(TunesmithError, match="no base is given"):
        load_merge_config({**models, "method": "ties"})
    with pytest.raises(TunesmithError, match="reads no other base"):
        load_merge_config({**models, "method": "slerp", "base": "x"})
    with pytest.raises(TunesmithError, match="linear averages the parents' weights and reads no base"):
        load_merge_config({**models, "method": "linear", "base": "x"})  # mergekit: "Missing required parameter"
    with pytest.raises(TunesmithError, match=r"t: 1.5 is outside \[0, 1\]"):
        load_merge_config({**models, "method": "slerp", "t": 1.5})
    with pytest.raises(TunesmithError, match="exactly two parents"):
        load_merge_config({**models, "method": "slerp", "parents": [{"path": "a"}, {"path": "b"}, {"path": "c"}]})
    with pytest.raises(TunesmithError, match="cat' is not a merge method for kind: models"):
        load_merge_config({**models, "method": "cat"})
    with pytest.raises(TunesmithError, match="sums? .*total|summed values"):
        load_merge_config({**models, "method": "ties", "base": "x", "majority_sign": "frequency"})
    assert load_merge_config({**models, "method": "model_stock", "base": "x"}).base == "x"


def test_every_field_has_a_help_text():
    rows = describe()
    keys = [k for k, *_ in rows]
    assert {"method", "parents[].path", "parents[].tolerance", "gate.limit", "density"} <= set(keys)
    assert all(help_text for *_, help_text in rows)


def _fake_run(folder: Path, *, status="completed", method="lora", r=4, base="tiny", rope="none") -> Path:
    """A run directory as far as the parent checks read it (config, manifest, adapter config)."""
    import yaml

    from tunesmith.config import dump_yaml, load_config

    folder.mkdir(parents=True)
    cfg = load_config({"name": folder.name, "model": {"name": base, "rope_scaling": rope},
                       "data": {"train": ["x.jsonl"]}, "train": {"method": method}})
    (folder / "config.yaml").write_text(dump_yaml(cfg))
    (folder / "manifest.json").write_text(json.dumps({"status": status, "model": {"sha256": f"sha-{base}"}}))
    if method == "full":
        (folder / "model").mkdir()
        (folder / "model" / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 32}))
    else:
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"r": r, "use_dora": method == "dora"}))
    assert yaml.safe_load((folder / "config.yaml").read_text())["name"] == folder.name
    return folder


def test_parents_are_checked_on_disk_and_reported_together(tmp_path):
    from tunesmith.merge.parents import inspect

    _fake_run(tmp_path / "runs" / "a", r=4)
    _fake_run(tmp_path / "runs" / "b", r=8, base="other")
    _fake_run(tmp_path / "runs" / "c", status="running")
    _fake_run(tmp_path / "runs" / "d", method="full")
    path = write(tmp_path / "m.yaml", """
        method: ties
        parents:
          - path: runs/a
          - path: runs/b
          - path: runs/c
          - path: runs/d
          - path: runs/missing
    """)
    with pytest.raises(TunesmithError) as e:
        inspect(load_merge_config(path))
    found = problems(e)
    assert "not finished (status: running)" in found["parents[2].path"] and found["parents[2].path"].startswith("5:")
    assert "train.method: full" in found["parents[3].path"] and "kind: models" in found["parents[3].path"]
    assert "does not exist" in found["parents[4].path"]

    # Parents that each look right, but not together: another base, and another rank for ties.
    path = write(tmp_path / "m2.yaml", "method: ties\nparents:\n  - path: runs/a\n  - path: runs/b\n")
    with pytest.raises(TunesmithError) as e:
        inspect(load_merge_config(path))
    found = problems(e)
    assert "trained on other" in found["parents[1].path"] and "same base" in found["parents[1].path"]
    assert "ranks differ: a r=4, b r=8" in found["method"] and "ties_svd" in found["method"]


def test_an_equal_base_with_other_ranks_merges_by_svd_forms(tmp_path):
    from tunesmith.merge.parents import inspect

    _fake_run(tmp_path / "a", r=4)
    _fake_run(tmp_path / "b", r=8)
    cfg = load_merge_config({"method": "ties_svd", "parents": [{"path": str(tmp_path / "a")},
                                                                {"path": str(tmp_path / "b")}]})
    parents, base = inspect(cfg)
    assert [p.rank for p in parents] == [4, 8] and base is None
    assert parents[0].describe()["lora_r"] == 4 and len(parents[0].describe()["config_sha256"]) == 64
    with pytest.raises(TunesmithError, match="ranks differ"):
        inspect(load_merge_config({"method": "dare_linear", "parents": [{"path": str(tmp_path / "a")},
                                                                        {"path": str(tmp_path / "b")}]}))


def test_model_parents_need_full_models_and_one_architecture(tmp_path):
    from tunesmith.merge.parents import inspect

    _fake_run(tmp_path / "lora", r=4)
    _fake_run(tmp_path / "full", method="full")
    other = tmp_path / "other-arch"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    cfg = load_merge_config({"kind": "models", "method": "linear", "parents": [
        {"path": str(tmp_path / "full")}, {"path": str(other)}, {"path": str(tmp_path / "lora")}]})
    with pytest.raises(TunesmithError) as e:
        inspect(cfg)
    found = problems(e)
    assert "trained an adapter" in found["parents[2].path"] and "kind: adapters" in found["parents[2].path"]
    cfg = load_merge_config({"kind": "models", "method": "linear", "parents": [
        {"path": str(tmp_path / "full")}, {"path": str(other)}]})
    with pytest.raises(TunesmithError, match="hidden_size 64 vs 32"):
        inspect(cfg)
    cfg = load_merge_config({"kind": "models", "method": "ties", "base": str(tmp_path / "nowhere-model"),
                             "parents": [{"path": str(tmp_path / "full")}, {"path": str(tmp_path / "full")}]})
    with pytest.raises(TunesmithError) as e:
        inspect(cfg)
    assert "base" in problems(e)


def test_an_exported_runs_hf_folder_brings_its_runs_lineage(tmp_path):
    """kind: models over RUN/export/hf (what the error above tells LoRA users to do): the parent is named
    after its run and carries the run's data, so the merge's manifest lists it; a plain folder does not."""
    from tunesmith.merge.parents import inspect
    from tunesmith.merge.run import _manifest

    folders = []
    for name in ("records", "topic"):
        run = _fake_run(tmp_path / "runs" / name, r=4)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["data"] = [{"path": f"{name}.jsonl", "sha256": name}]
        (run / "manifest.json").write_text(json.dumps(manifest))
        hf = run / "export" / "hf"  # as `tunesmith export RUN --format hf` leaves it
        hf.mkdir(parents=True)
        (hf / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 32}))
        (run / "export" / "export_manifest.json").write_text(json.dumps({"run": str(run.resolve())}))
        (run / "export" / "training_config.yaml").write_text((run / "config.yaml").read_text())
        folders.append(hf)
    plain = tmp_path / "plain" / "hf"
    plain.mkdir(parents=True)
    (plain / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 32}))
    cfg = load_merge_config({"kind": "models", "method": "linear",
                             "parents": [{"path": str(f)} for f in (*folders, plain)]})
    parents, _ = inspect(cfg)
    assert [p.label for p in parents] == ["records", "topic", "hf"]
    assert [p.describe()["kind"] for p in parents] == ["export", "export", "folder"]
    assert len(parents[0].describe()["config_sha256"]) == 64 and parents[2].describe()["config_sha256"] is None
    data = _manifest(cfg, parents, {"base": None})["data"]
    assert [d["path"] for d in data] == ["records.jsonl", "topic.jsonl"]


def test_parent_labels_are_distinct_and_never_the_merges_own_column(tmp_path):
    """A parent run named "merged" (a merge merged again) would share the merge's column, so the gate
    would compare the merge with itself and always pass; a renamed duplicate must not collide either."""
    from tunesmith.merge.gate import MERGED
    from tunesmith.merge.parents import inspect

    folders = [_fake_run(tmp_path / "x" / "merged", r=4), _fake_run(tmp_path / "x" / "a", r=4),
               _fake_run(tmp_path / "y" / "a", r=4), _fake_run(tmp_path / "x" / "a-2", r=4)]
    cfg = load_merge_config({"method": "ties", "parents": [{"path": str(f)} for f in folders]})
    labels = [p.label for p in inspect(cfg)[0]]
    assert MERGED not in labels and len(set(labels)) == 4, labels
    assert labels[1] == "a" and labels[0].startswith("merged-")


def test_moe_tensor_adapters_and_unreadable_adapter_configs_are_refused_at_their_key(tmp_path):
    """peft's add_weighted_adapter raises a bare ValueError for adapters on nn.Parameters (moe.targets
    experts or router); a broken adapter_config.json would be a JSON traceback."""
    from tunesmith.merge.parents import inspect

    moe = _fake_run(tmp_path / "moe", r=4)
    (moe / "adapter" / "adapter_config.json").write_text(json.dumps(
        {"r": 4, "target_parameters": ["mlp.experts.gate_up_proj"]}))
    broken = _fake_run(tmp_path / "broken", r=4)
    (broken / "adapter" / "adapter_config.json").write_text("{not json")
    _fake_run(tmp_path / "plain", r=4)
    cfg = load_merge_config({"method": "linear", "parents": [{"path": str(tmp_path / n)}
                                                             for n in ("plain", "moe", "broken")]})
    with pytest.raises(TunesmithError) as e:
        inspect(cfg)
    found = problems(e)
    assert "mixture-of-experts" in found["parents[1].path"] and "kind: models" in found["parents[1].path"]
    assert "not valid JSON" in found["parents[2].path"]


def test_a_merge_never_deletes_its_own_parent_even_with_overwrite(tmp_path):
    """name/output_dir pointing at a parent run: overwrite=true used to empty that folder (the parent)
    before the merge loaded it."""
    from tunesmith.merge.run import run_merge

    a, b = _fake_run(tmp_path / "runs" / "a", r=4), _fake_run(tmp_path / "runs" / "b", r=4)
    cfg = load_merge_config({"name": "a", "output_dir": str(tmp_path / "runs"), "overwrite": True,
                             "method": "linear", "parents": [{"path": str(a)}, {"path": str(b)}]})
    with pytest.raises(TunesmithError, match="an input of this merge") as e:
        run_merge(cfg, show_progress=False)
    assert e.value.problems[0].field == "name"
    assert (a / "adapter" / "adapter_config.json").is_file() and (a / "manifest.json").is_file()


def test_a_base_under_the_home_folder_resolves_like_the_parents(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "base").mkdir(parents=True)
    cfg = load_merge_config({"kind": "models", "method": "task_arithmetic", "base": "~/models/base",
                             "parents": [{"path": "~/a"}, {"path": "~/b"}]})
    assert cfg.base == str(tmp_path / "models" / "base") and cfg.parents[0].path == str(tmp_path / "a")
