"""`tunesmith merge` end to end on the tiny model: two LoRA runs on different skills merged by TIES into
a run directory that generate, eval and export read; a gate that fails is a clear exit and is
recorded; two full fine-tunes merged by mergekit load as a full fine-tune run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import tunesmith
from tunesmith.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
SENTIMENT = ROOT / "examples" / "classify" / "sentiment.jsonl"


def _train(tiny_config, name: str, **over) -> Path:
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in tiny_config.items()}
    cfg["name"] = name
    for dotted, value in over.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    return tunesmith.train(cfg, show_progress=False)


@pytest.fixture(scope="module")
def parents(tmp_path_factory, tiny_model_dir) -> dict:
    """Two finished LoRA runs of the same rank on different skills (JSON records; sentiment words),
    and a suite for each: records (generation + reply loss) and sentiment (generation, exact match)."""
    tmp = tmp_path_factory.mktemp("merge-parents")
    rows = (QUICKSTART / "train.jsonl").read_text().splitlines()[:24]
    (tmp / "records.jsonl").write_text("\n".join(rows) + "\n")
    base = {"output_dir": str(tmp / "runs"), "seed": 7, "model": {"name": str(tiny_model_dir)},
            "data": {"max_length": 128},
            "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "logging_steps": 2, "save_steps": 50,
                      "eval_steps": 0, "precision": "fp32"},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    records = _train(base, "records", data__train=[str(tmp / "records.jsonl")])
    sentiment = _train(base, "sentiment", data__train=[str(SENTIMENT)],
                       data__task_prompt="Sentiment of this review, one word:\n\n{text}")
    (tmp / "records-suite.yaml").write_text(yaml.safe_dump({"name": "records", "tasks": [
        {"name": "records", "type": "generation", "data": str(QUICKSTART / "heldout.jsonl"), "limit": 3,
         "prompt": "{{ instruction }}\n\n{{ input }}", "reference": "{{ expected | tojson }}",
         "metrics": ["json_match"], "max_new_tokens": 6},
        {"name": "reply_loss", "type": "perplexity", "data": str(tmp / "records.jsonl"), "limit": 8}]}))
    (tmp / "sentiment-suite.yaml").write_text(yaml.safe_dump({"name": "sentiment", "tasks": [
        {"name": "sentiment", "type": "generation", "data": str(ROOT / "examples" / "eval" / "sentiment.jsonl"),
         "limit": 3, "prompt": "Sentiment of this review, one word:\n\n{{ text }}", "reference": "{{ label }}",
         "metrics": ["exact_match"], "max_new_tokens": 3}]}))
    return {"dir": tmp, "records": records, "sentiment": sentiment}


def _merge_yaml(folder: Path, name: str, **settings) -> Path:
    """A merge config beside the parents' runs; parent paths relative to it."""
    path = folder / f"{name}.yaml"
    raw = {"name": name, "output_dir": str(folder / "merged"), **settings}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_ties_merge_of_two_skills_is_a_run_that_generate_eval_serve_and_export_read(parents, capsys):
    d = parents["dir"]
    path = _merge_yaml(d, "skills", kind="adapters", method="ties", density=0.5, parents=[
        {"path": "runs/records", "eval_suite": "records-suite.yaml", "tolerance": 100.0},
        {"path": "runs/sentiment", "weight": 0.8, "eval_suite": "sentiment-suite.yaml", "tolerance": 1.0}])
    assert main(["merge", str(path), "--quiet"]) == 0
    run_dir = d / "merged" / "skills"
    assert "merged run" in capsys.readouterr().out

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["output"] == "adapter"
    merge = manifest["merge"]
    assert merge["method"] == "ties" and merge["weights"] == [1.0, 0.8] and merge["density"] == 0.5
    assert [p["label"] for p in merge["parents"]] == ["records", "sentiment"]
    assert all(len(p["config_sha256"]) == 64 and p["lora_r"] == 4 for p in merge["parents"])
    assert merge["adapter"]["r"] == 4 and manifest["versions"]["peft"]
    gate = merge["gate"]
    assert gate["passed"] and not gate["forced"]
    # records: json_match (its first listed metric) and eval_loss; sentiment: exact_match
    assert sorted((c["parent"], c["metric"]) for c in gate["checks"]) == [
        ("records", "eval_loss"), ("records", "json_match"), ("sentiment", "exact_match")]
    assert {p["path"] for p in manifest["data"]} == {str(d / "records.jsonl"), str(SENTIMENT)}

    # The report shows every parent and the merge side by side, per suite (gate.cross: true).
    report = (run_dir / "report.md").read_text()
    assert "| records | sentiment | merged |" in report and "Kept" in report
    side = json.loads((run_dir / "gate" / "results.json").read_text())["results"]
    assert all(list(r["models"]) [-1] == "merged" and len(r["models"]) == 3 for r in side.values())
    assert (run_dir / "gate" / "records" / "report.html").is_file()

    # A run directory like any other: the merged adapter loads with generate, eval and export.
    loaded = tunesmith.load(run_dir)
    assert "adapter" in loaded.description
    assert len(tunesmith.generate(loaded, ["Say hi"], max_new_tokens=4)) == 1
    out = tunesmith.evaluate(run_dir, d / "sentiment-suite.yaml", show_progress=False)
    results = json.loads((out / "eval" / "results.json").read_text())
    assert list(results["models"]) == ["base", "tuned"]
    from fastapi.testclient import TestClient

    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend

    with TestClient(create_app(TransformersBackend(str(run_dir), max_batch=2))) as client:
        reply = client.post("/v1/chat/completions", json={"model": client.get("/v1/models").json()["data"][0]["id"],
                                                           "messages": [{"role": "user", "content": "hi"}],
                                                           "max_tokens": 3})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["role"] == "assistant"

    from tunesmith.api import export  # tunesmith.export is also the package of that name

    exported = export(run_dir, "hf", out=d / "skills-export")
    assert (exported / "hf" / "config.json").is_file() and (exported / "adapter" / "adapter_config.json").is_file()


def test_a_failed_gate_rejects_the_merge_with_the_numbers_and_force_keeps_it(parents, capsys):
    d = parents["dir"]
    # records nearly left out (weight 0.05): the merge cannot match the records run on its own rows.
    settings = {"kind": "adapters", "method": "linear", "parents": [
        {"path": "runs/records", "weight": 0.05, "eval_suite": "records-suite.yaml", "tolerance": 0.0,
         "metrics": ["reply_loss/eval_loss"]},
        {"path": "runs/sentiment", "weight": 1.0}]}
    path = _merge_yaml(d, "rejected", **settings)
    assert main(["merge", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "failed its eval gate" in err and "parent records" in err and "suite records" in err
    assert "reply_loss/eval_loss" in err and "tolerance 0.0" in err and "--force" in err
    run_dir = d / "merged" / "rejected"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "rejected"
    (check,) = manifest["merge"]["gate"]["checks"]
    assert not check["passed"] and check["merged_value"] > check["parent_value"] and check["drop"] > 0
    assert not (run_dir / "adapter").exists() and (run_dir / "rejected" / "adapter" / "adapter_config.json").exists()
    assert "REJECTED" in (run_dir / "report.md").read_text()
    with pytest.raises(tunesmith.TunesmithError, match="status: rejected"):
        tunesmith.load(run_dir)

    # A finished (or rejected) merge is not replaced silently; --force keeps a failing merge, recorded.
    assert main(["merge", str(path), "--quiet", "--force"]) == 2
    assert "overwrite=true" in capsys.readouterr().err
    assert main(["merge", str(path), "overwrite=true", "--quiet", "--force"]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["merge"]["gate"]["forced"]
    assert "FAIL" in capsys.readouterr().out and (run_dir / "adapter" / "adapter_config.json").is_file()


def test_a_gate_that_checks_nothing_or_breaks_leaves_a_failed_merge_not_a_finished_one(parents, capsys, monkeypatch):
    from tunesmith.merge import gate

    d = parents["dir"]
    settings = {"kind": "adapters", "method": "ties", "density": 0.5, "parents": [
        {"path": "runs/records", "eval_suite": "records-suite.yaml", "tolerance": 1.0},
        {"path": "runs/sentiment"}], "gate": {"cross": False}}
    path = _merge_yaml(d, "ungated", **settings)
    monkeypatch.setattr(gate, "_checks", lambda *a, **k: [])  # a suite whose tasks report nothing numeric
    assert main(["merge", str(path), "--quiet"]) == 2
    assert "reported no numeric metric to gate on" in capsys.readouterr().err
    run_dir = d / "merged" / "ungated"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"
    with pytest.raises(tunesmith.TunesmithError, match="has not finished"):
        tunesmith.load(run_dir)
    monkeypatch.undo()
    assert main(["merge", str(path), "--quiet"]) == 0  # a failed merge is replaced by the next attempt
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"


def test_bad_parents_are_reported_together_with_their_keys(parents, tmp_path, capsys):
    d = parents["dir"]
    unfinished = d / "runs" / "unfinished"
    shutil.copytree(parents["records"], unfinished, dirs_exist_ok=True)
    manifest = json.loads((unfinished / "manifest.json").read_text())
    (unfinished / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    path = _merge_yaml(d, "bad", kind="adapters", method="ties", parents=[
        {"path": "runs/unfinished"}, {"path": "runs/nowhere"}, {"path": "records.jsonl"}])
    assert main(["merge", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err or err.count("parents[") >= 3
    assert "parents[0].path" in err and "not finished (status: running)" in err
    assert "parents[1].path" in err and "does not exist" in err
    assert "parents[2].path" in err and "not a run directory" in err
    assert f"{path}:" in err  # file:line of each key


@pytest.fixture(scope="module")
def full_parents(parents, tiny_model_dir) -> list[Path]:
    """Two finished full fine-tunes of the tiny model on the two skills."""
    base = {"output_dir": str(parents["dir"] / "runs"), "seed": 7, "model": {"name": str(tiny_model_dir)},
            "data": {"max_length": 128, "train": [str(parents["dir"] / "records.jsonl")]},
            "train": {"method": "full", "max_steps": 2, "batch_size": 4, "learning_rate": 1e-3, "eval_steps": 0,
                      "save_steps": 50, "precision": "fp32"}}
    return [_train(base, "full-records"),
            _train(base, "full-sentiment", data__train=[str(SENTIMENT)], data__task_prompt="Sentiment: {text}")]


def test_full_fine_tunes_merge_with_mergekit_into_a_full_run(parents, full_parents, tiny_model_dir):
    path = _merge_yaml(parents["dir"], "full-ties", kind="models", method="ties", base=str(tiny_model_dir),
                       density=0.7, parents=[{"path": str(p)} for p in full_parents])
    run_dir = tunesmith.run_merge(path, show_progress=False)
    assert (run_dir / "model" / "model.safetensors").is_file() and (run_dir / "model" / "mergekit_config.yml").exists()
    cfg = tunesmith.load_config(run_dir / "config.yaml")
    assert cfg.train.method == "full" and cfg.model.name == str(tiny_model_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["merge"]["mergekit_config"]["merge_method"] == "ties" and manifest["versions"]["mergekit"]
    assert manifest["merge"]["gate"] is None and "Not gated" in (run_dir / "report.md").read_text()
    loaded = tunesmith.load(run_dir)
    assert "full fine-tune" in loaded.description
    assert len(tunesmith.generate(loaded, ["hi"], max_new_tokens=3)) == 1


SHIPPED = sorted((ROOT / "configs" / "merge").glob("*.yaml"))


def test_there_are_shipped_merge_configs_of_both_kinds():
    from tunesmith.merge.config import load_merge_config

    kinds = {load_merge_config(p).kind for p in SHIPPED}
    assert kinds == {"adapters", "models"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_merge_config_validates_and_merges_tiny_parents(path, parents, full_parents, tiny_model_dir):
    """Every configs/merge/*.yaml loads, its suites load, and it merges: the parents it names (runs of
    the embedded model, which CI does not train) are replaced by tiny runs of the same kind."""
    import dataclasses

    from tunesmith.merge.config import load_merge_config
    from tunesmith.merge.gate import suites

    cfg = load_merge_config(path)
    assert all(p.eval_suite for p in cfg.parents) and len(suites(cfg)) == len(cfg.parents)
    tiny = [parents["records"], parents["sentiment"]] if cfg.kind == "adapters" else full_parents
    cfg = dataclasses.replace(
        cfg, output_dir=str(parents["dir"] / "shipped"), base=str(tiny_model_dir) if cfg.base else None,
        gate=dataclasses.replace(cfg.gate, limit=2),
        parents=[dataclasses.replace(p, path=str(run)) for p, run in zip(cfg.parents, tiny)])
    run_dir = tunesmith.run_merge(cfg, force=True, show_progress=False)  # tiny random models: kept whatever scores
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["merge"]["method"] == cfg.method
    assert {c["parent"] for c in manifest["merge"]["gate"]["checks"]} == {p.name for p in tiny}
    assert tunesmith.load(run_dir).model is not None
