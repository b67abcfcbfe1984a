"""`tunesmith audit runs/quickstart` on the embedded model: all four checks, base vs tuned, and the
Safety section in headless Chromium. Needs the quickstart's run (`make quickstart`); skipped without
it, as in CI on a clean clone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.cli import main

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "runs" / "quickstart"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.integration


def _small_suite(folder: Path) -> Path:
    import yaml

    import tunesmith.audit

    default = Path(tunesmith.audit.__file__).parent / "suites" / "default.yaml"
    suite = yaml.safe_load(default.read_text())
    for opts in suite["checks"].values():
        for key, value in opts.items():
            if isinstance(value, str) and value.startswith("../"):
                opts[key] = str((default.parent / value).resolve())
    checks = suite["checks"]
    checks["memorization"].update(candidates=100, extraction_rows=4, max_new_tokens=32)
    checks["refusal"]["max_new_tokens"], checks["toxicity"]["max_new_tokens"] = 32, 24
    path = folder / "small-suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_audit_of_the_quickstart_run(tmp_path, capsys):
    manifest = RUN / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()).get("status") != "completed":
        pytest.skip("no finished runs/quickstart: run `make quickstart` first")
    out = tmp_path / "audit"
    # The shipped suite, smaller: --limit 3 prompts of each kind per check and 3 BBQ rows; every
    # counterfactual template and canary still runs, against 100 candidate secrets instead of 500, with
    # 4 extraction rows and shorter replies (bench/audit_quickstart.py runs the full suite)
    assert main(["audit", str(RUN), "--suite", str(_small_suite(tmp_path)), "--limit", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "audit" / "results.json").read_text())
    assert set(results["checks"]) == {"refusal", "toxicity", "bias", "memorization"}
    assert list(results["models"]) == ["base", "tuned"]
    mem = results["checks"]["memorization"]["metrics"]
    planted = json.loads(manifest.read_text()).get("canaries") or []
    if planted:  # the quickstart config plants 3 canaries
        assert len([r for r in results["checks"]["memorization"]["records"]["tuned"] if r["test"] == "canary"]) \
            == len(planted)
        assert 0 <= mem["base"]["canary_exposure_max"] <= 29.9
    for check in results["checks"].values():
        assert check["metrics"]["base"] and check["metrics"]["tuned"]
    assert "harmful_refusal_rate" in printed
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser half of this check needs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((out / "report.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(tmp_path / "safety.png"), full_page=True)
            visible = page.locator("#safety").is_visible()
            sections = page.locator("h3").all_inner_texts()
        finally:
            browser.close()
    assert visible
    assert {"Refusal and over-refusal", "Toxicity of generations", "Bias", "Memorization"} <= set(sections)
