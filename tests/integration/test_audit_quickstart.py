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


def test_audit_of_the_quickstart_run(tmp_path, capsys):
    manifest = RUN / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()).get("status") != "completed":
        pytest.skip("no finished runs/quickstart: run `make quickstart` first")
    out = tmp_path / "audit"
    # --limit keeps it to a few minutes: 3 prompts of each kind per check, 3 BBQ rows; every
    # counterfactual template and canary still runs
    assert main(["audit", str(RUN), "--limit", "3", "--out", str(out)]) == 0
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
