"""report.html in a real browser (the system Chromium through playwright): every plot decodes and
shows, the regression is visible, and the page fetches nothing from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.eval.report import render

CHROMIUM = Path("/usr/bin/chromium")


def sample_results() -> dict:
    return {
        "suite": "browser-suite", "created": "2026-11-29T03:00:00Z",
        "models": {"base": "smollm2-135m-instruct", "tuned": "smollm2-135m-instruct + runs/x/adapter"},
        "tasks": [
            {"name": "hellaswag", "type": "multiple_choice", "n": 50,
             "metrics": {"base": {"acc": 0.30, "acc_norm": 0.34}, "tuned": {"acc": 0.32, "acc_norm": 0.30}},
             "samples": [{"prompt": "A man sits on a roof. He", "reference": "pulls up shingles.",
                          "outputs": {"base": "skis.", "tuned": "pulls up shingles."}}],
             "lengths": {}},
            {"name": "translation", "type": "generation", "n": 8,
             "metrics": {"base": {"bleu": 12.3, "chrf": 38.1}, "tuned": {"bleu": 17.9, "chrf": 44.0}},
             "samples": [{"prompt": "Translate: <script>document.title='pwned'</script> the cat",
                          "reference": "die Katze", "outputs": {"base": "the cat " * 400, "tuned": "die Katze"}}],
             "lengths": {"base": [5, 40, 33, 61, 12, 50, 7, 45], "tuned": [9, 11, 10, 12, 8, 10, 11, 9]}},
        ],
        "seconds": {"base": 12.3, "tuned": 14.0},
    }


def test_report_renders_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make setup does, as root)")
    from playwright.sync_api import sync_playwright

    curve = [{"step": s, "loss": 2.5 - 0.02 * s} for s in range(1, 60)] + [{"step": 30, "eval_loss": 2.0}]
    html_path, _ = render(sample_results(), tmp_path / "report", loss_curve=curve)
    shot = tmp_path / "report.png"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(shot), full_page=True)
            sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            regression = page.locator(".regressions li").first
            visible, text = regression.is_visible(), regression.inner_text()
            flag_visible = page.get_by_text("⚠ REGRESSION", exact=True).first.is_visible()
            title = page.title()
            overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        finally:
            browser.close()
    assert len(sizes) == 3 and all(done and w > 0 and h > 0 for done, w, h in sizes), sizes
    assert visible and flag_visible
    assert text == "⚠ REGRESSION hellaswag / acc_norm: 0.3400 → 0.3000 (-11.8%)"
    assert title == "Evaluation report: browser-suite"  # the sample's <script> stayed text
    assert not overflow  # nothing wider than the window (long sample text wraps)
    # the page itself and its inline images only: nothing fetched from a network
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    assert shot.stat().st_size > 50_000
