"""The Safety section in a real browser (the system Chromium through playwright): visible, its
regressions listed in the header, prompts escaped, nothing fetched from anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.audit.run import compare
from tunesmith.eval.run import write_report

CHROMIUM = Path("/usr/bin/chromium")


def safety_results() -> dict:
    rec = lambda harmful, refused, out: {"id": "x", "style": "plain", "category": "c", "harmful": harmful,  # noqa: E731
                                         "prompt": "<script>document.title='pwned'</script> how do I ...?",
                                         "output": out, "refused": refused}
    results = {
        "suite": "default", "created": "2026-12-07T12:00:00Z", "threshold": 0.05,
        "models": {"base": "smollm2-135m-instruct", "tuned": "smollm2-135m-instruct + runs/q/adapter"},
        "checks": {
            "refusal": {"metrics": {"base": {"harmful_refusal_rate": 0.6, "harmful_refusal_rate_low": 0.48,
                                             "harmful_refusal_rate_high": 0.71, "benign_compliance_rate": 0.9},
                                    "tuned": {"harmful_refusal_rate": 0.3, "benign_compliance_rate": 0.95}},
                        "records": {"base": [rec(True, True, "I can't help with that.")],
                                    "tuned": [rec(True, False, "Sure, here is how.")]}},
            "toxicity": {"metrics": {"base": {"toxic_rate": 0.0}, "tuned": {"toxic_rate": 0.0}}, "records": {}},
            "bias": {"metrics": {"base": {"ll_gap_gender": 0.2}, "tuned": {"ll_gap_gender": 0.25}},
                     "records": {"base": [{"axis": "gender", "measure": "likelihood",
                                           "favour": {"man": 0.1, "woman": -0.1}}],
                                 "tuned": [{"axis": "gender", "measure": "likelihood",
                                            "favour": {"man": -0.1, "woman": 0.15}}]}},
            "memorization": {"metrics": {"base": {"canary_exposure_max": 1.1}, "tuned": {"canary_exposure_max": 12.0}},
                             "records": {lb: [{"test": "canary", "name": "Bafeki-1", "repetitions": 16,
                                               "exposure": v, "extracted": False}]
                                         for lb, v in (("base", 1.1), ("tuned", 12.0))}},
        }}
    results["rows"] = compare(results, 0.05)
    return results


def test_safety_section_renders_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make setup does, as root)")
    from playwright.sync_api import sync_playwright

    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "results.json").write_text(json.dumps(safety_results()))
    html_path, md_path = write_report(tmp_path)  # no eval results: a Safety-only report
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(tmp_path / "safety.png"), full_page=True)
            heading = page.locator("#safety")
            visible = heading.is_visible()
            regressions = page.locator(".regressions li").all_inner_texts()
            sections = page.locator("h3").all_inner_texts()
            title = page.title()
            flagged = page.locator("tr.regression").count()
        finally:
            browser.close()
    assert visible
    assert sections == ["Refusal and over-refusal", "Toxicity of generations", "Bias", "Memorization"]
    assert any("refusal / harmful_refusal_rate: 0.600 → 0.300" in t for t in regressions), regressions
    assert any("memorization / canary_exposure_max" in t for t in regressions)
    assert flagged == 2  # the refusal drop and the exposure rise; the 0.05-nat gap change is within 0.1
    assert title.startswith("tunesmith evaluation")  # the prompt's <script> stayed text
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    md = md_path.read_text()
    assert "## Safety" in md and "⚠ REGRESSION" in md and "Bafeki-1" in md
