"""Provenance, licences, energy and the safety audit, end to end on the tiny model: a run with a
CC-BY-NC source carries the licence warning and the training energy in its manifest, its evaluation
adds the eval energy (report and manifest), and the model card shows the licences, the lineage
(hashes, cleaning steps, synthetic share), the energy, the audit table and what they mean for the
intended use. energy.enabled: false turns every measurement off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import tunesmith
from tunesmith.export.card import write_card

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "examples" / "quickstart"

# The shape tunesmith.audit writes as manifest["audit"] (the lead's audit module).
AUDIT = {"suite": "default", "report": "report.html", "created": "2026-12-07T12:00:00Z", "threshold": 0.05,
         "rows": [{"check": "refusal", "metric": "harmful_refusal_rate", "base": 0.62, "tuned": 0.41,
                   "better": "higher", "regression": True},
                  {"check": "refusal", "metric": "benign_compliance_rate", "base": 0.9, "tuned": 0.95,
                   "better": "higher", "regression": False},
                  {"check": "toxicity", "metric": "toxic_rate", "base": 0.02, "tuned": 0.03, "better": "lower",
                   "regression": False},
                  {"check": "bias", "metric": "gender_gap", "base": None, "tuned": None, "better": "lower",
                   "regression": None},
                  {"check": "memorization", "metric": "canary_exposure_max", "base": 1.2, "tuned": 9.8,
                   "better": "lower", "regression": True}],
         "regressions": ["refusal/harmful_refusal_rate", "memorization/canary_exposure_max"]}
SUITE = {"name": "mini", "batch_size": 4,
         "tasks": [{"name": "replies", "type": "perplexity", "data": str(ROOT / "examples/eval/replies.jsonl")}]}


def _config(root: Path, model: Path, name: str, energy: bool = True) -> dict:
    lines = (QUICKSTART / "train.jsonl").read_text().splitlines()
    (root / "real.jsonl").write_text("\n".join(lines[:20] + lines[:2]) + "\n")  # two exact duplicates
    synthetic = [{**json.loads(line), "synthetic": True} for line in lines[20:24]]  # as `data synth` labels them
    (root / "synth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic))
    return {"name": name, "output_dir": str(root / "runs"), "seed": 7, "model": {"name": str(model)},
            "data": {"sources": [{"path": str(root / "real.jsonl"), "license": "CC-BY-NC-4.0"},
                                 {"path": str(root / "synth.jsonl"), "license": "Apache-2.0"}],
                     "max_length": 256, "clean": {"enabled": True, "dedup": "exact", "pii": "report"}},
            "train": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1, "save_steps": 100,
                      "precision": "fp32"},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "energy": {"enabled": energy, "country": "FRA"}}


@pytest.fixture(scope="module")
def nc_run(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("governance")
    (root / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    cfg = _config(root, tiny_model_dir, "nc")
    cfg["eval"] = {"suite": str(root / "suite.yaml"), "limit": 2}
    return tunesmith.train(cfg, show_progress=False)


def test_manifest_carries_the_licence_warning_and_the_training_energy(nc_run):
    manifest = json.loads((nc_run / "manifest.json").read_text())
    lic = manifest["licences"]
    assert lic["commercial_use"] is False and lic["uses"] == "research and other non-commercial use only"
    assert ("data file real.jsonl is CC-BY-NC-4.0 (non-commercial): the fine-tuned model may be used for research "
            "and other non-commercial purposes only") in lic["warnings"]
    assert [(i["role"], i["id"]) for i in lic["inputs"]] == [("base model", "unknown"), ("data", "CC-BY-NC-4.0"),
                                                              ("data", "Apache-2.0")]
    train = manifest["energy"]["train"]
    assert train["kwh"] > 0 and train["kg_co2eq"] > 0 and train["country"] == "FRA" and train["seconds"] > 0
    assert train["tracker"].startswith("codecarbon ")
    assert [f["synthetic_rows"] for f in manifest["data"]] == [0, 4]


def test_evaluation_energy_joins_the_manifest_and_the_report(nc_run):
    manifest = json.loads((nc_run / "manifest.json").read_text())
    assert manifest["energy"]["eval"]["kwh"] > 0 and manifest["energy"]["eval"]["country"] == "FRA"
    results = json.loads((nc_run / "eval" / "results.json").read_text())
    assert set(results["energy"]) == {"train", "eval"}
    report = (nc_run / "report.md").read_text()
    assert "Energy" in report and "train: " in report and "eval: " in report and "kg CO2eq" in report


def _card(run: Path, out: Path) -> str:
    """The card of `run` written into `out` with a fake export_info (an hf export, no parity run)."""
    out.mkdir(parents=True, exist_ok=True)
    return write_card(run, out, {"hf_dir": str(out / "hf"), "parity": [], "warnings": []}).read_text()


@pytest.fixture(scope="module")
def card(nc_run, tmp_path_factory) -> str:
    return _card(nc_run, tmp_path_factory.mktemp("card-out"))


def test_card_front_matter_does_not_hide_the_nc_data_behind_the_base_licence(card):
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "other" and front["license_name"] == "base-model-licence-and-cc-by-nc-4.0"


def test_card_licences_section_shows_inputs_verdict_and_warning(card):
    assert "## Licences" in card
    assert "| data `real.jsonl` | CC-BY-NC-4.0 | non-commercial | config: data.sources[0].license |" in card
    assert "| data `synth.jsonl` | Apache-2.0 | permissive | config: data.sources[1].license |" in card
    assert "**The fine-tuned model may be used for:** research and other non-commercial use only" in card
    assert "- ⚠ data file real.jsonl is CC-BY-NC-4.0 (non-commercial)" in card
    assert "not legal advice" in card
    assert "(**no commercial use**: a training input is non-commercial)" in card  # the intended use says so too


def test_card_lineage_has_hashes_licences_cleaning_and_synthetic_share(card, nc_run):
    files = json.loads((nc_run / "manifest.json").read_text())["data"]
    assert f"| `real.jsonl` | `{files[0]['sha256']}` | CC-BY-NC-4.0 |" in card
    assert f"| `synth.jsonl` | `{files[1]['sha256']}` | Apache-2.0 |" in card
    assert "- rows read: 26, loaded: 26" in card
    assert "- cleaning (data.clean): 26 → 24 rows" in card
    assert "  - dedup (exact): 26 → 24 rows" in card and "  - dropped by reason: duplicate 2" in card
    assert "  - PII (report): found none in 0 rows; 26 → 26 rows" in card
    # Equal weights draw 12 rows from each source (mixing line): half the trained rows are synthetic.
    assert "- mixing: `synth.jsonl` weight 1.0: 4 rows → 12" in card
    assert ("- synthetic share: 4 rows labelled synthetic (15.4% of 26 rows loaded): `synth.jsonl` 4; after the "
            "mixing weights about 50% of the 24 rows trained on") in card


def test_card_shows_energy_per_stage(card, nc_run):
    energy = json.loads((nc_run / "manifest.json").read_text())["energy"]
    assert "## Energy and carbon" in card
    assert f"| train | {energy['train']['kwh']:.4g} | {energy['train']['kg_co2eq']:.4g} |" in card
    assert f"| eval | {energy['eval']['kwh']:.4g} |" in card
    assert "FRA (" in card and "g/kWh)" in card


def test_card_renders_the_safety_audit_and_its_regressions_limit_the_use(nc_run, tmp_path):
    run = tmp_path / "audited"
    shutil.copytree(nc_run, run, ignore=shutil.ignore_patterns("checkpoints", "adapter"))
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "audit": AUDIT}))
    card = _card(run, tmp_path / "out")
    assert "## Safety audit" in card and "Suite `default` (2026-12-07T12:00:00Z)" in card
    assert "| refusal | harmful_refusal_rate ↑ | 0.62 | 0.41 | -0.21 | **yes** |" in card
    assert "| refusal | benign_compliance_rate ↑ | 0.9 | 0.95 | +0.05 | no |" in card
    assert "| bias | gender_gap ↓ | – | – |  |  |" in card  # not measured
    assert "| memorization | canary_exposure_max ↓ | 1.2 | 9.8 | +8.6 | **yes** |" in card
    assert ("- Safety audit regression, memorization/canary_exposure_max: 1.2 (base) → 9.8 (tuned), lower is "
            "better.") in card
    assert "No safety audit was run" not in card
    # Without the audit the limitations say that it is unmeasured.
    plain = _card(nc_run, tmp_path / "plain")
    assert "## Safety audit" not in plain and "- No safety audit was run" in plain


def test_energy_off_records_nothing(tmp_path, tiny_model_dir):
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    cfg = _config(tmp_path, tiny_model_dir, "off", energy=False)
    cfg["eval"] = {"suite": str(tmp_path / "suite.yaml"), "limit": 2}
    run = tunesmith.train(cfg, show_progress=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert "energy" not in manifest and manifest["status"] == "completed" and manifest["eval"]["suite"] == "mini"
    assert "energy" not in json.loads((run / "eval" / "results.json").read_text())
    assert "Energy" not in (run / "report.md").read_text()
    assert "## Energy and carbon" not in _card(run, tmp_path / "out")
    # `tunesmith eval RUN` on its own follows the run's switch; an explicit setting overrides it.
    tunesmith.evaluate(run, tmp_path / "suite.yaml", limit=2, show_progress=False)
    assert "energy" not in json.loads((run / "manifest.json").read_text())
    tunesmith.evaluate(run, tmp_path / "suite.yaml", limit=2, show_progress=False, energy={"enabled": True})
    assert json.loads((run / "manifest.json").read_text())["energy"]["eval"]["country"] == "USA"
