"""The studio in headless Chromium against `tunesmith serve --jobs` on the tiny model: a malformed
upload lists its line, the generated form shows a bad value inline, then upload -> launch -> live curve
-> result -> chat with the fine-tuned model. A screenshot is kept in the test's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_jobs_api import KEY, ROWS, Server

CHROMIUM = Path("/usr/bin/chromium")


def test_studio_upload_launch_watch_chat(tmp_path, tiny_model_dir):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make setup does, as root)")
    from playwright.sync_api import expect, sync_playwright

    good, bad, held = tmp_path / "train.jsonl", tmp_path / "broken.jsonl", tmp_path / "held.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:16]))
    held.write_text("".join(json.dumps(r) + "\n" for r in ROWS[16:24]))
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"instruction": "no answer"}) + "\n")
    server = Server(tiny_model_dir, tmp_path / "service")
    requests: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"http://127.0.0.1:{server.port}/studio")
            page.fill("#key", KEY)
            page.dispatch_event("#key", "change")
            expect(page.locator("#base")).not_to_have_text("…", timeout=20_000)
            page.set_input_files("#file", str(bad))
            page.click("#upload")
            expect(page.locator("#upload-result pre")).to_contain_text("broken.jsonl:2:", timeout=20_000)
            page.set_input_files("#file", str(good))
            page.click("#upload")
            expect(page.locator("#upload-result")).to_contain_text("kept as file-", timeout=20_000)
            page.set_input_files("#vfile", str(held))
            page.click("#vupload")
            expect(page.locator("#vupload-result")).to_contain_text("kept as file-", timeout=20_000)
            page.fill("#f-train\\.learning_rate", "-3")
            page.click("#check")
            expect(page.locator("#e-train\\.learning_rate")).not_to_be_empty(timeout=20_000)
            page.fill("#f-train\\.learning_rate", "")
            page.fill("#f-train\\.epochs", "2")
            page.fill("#f-train\\.batch_size", "4")
            page.click("#check")
            expect(page.locator("#yaml")).to_contain_text("epochs: 2", timeout=20_000)
            page.click("#go")
            expect(page.locator("#status")).to_contain_text("succeeded", timeout=240_000)
            expect(page.locator("#result-body")).to_contain_text("Fine-tuned model ft:", timeout=20_000)
            report = page.frame_locator("#report")  # base vs tuned on the validation file
            expect(report.locator("h1")).to_contain_text("tunesmith evaluation", timeout=20_000)
            expect(report.locator("body")).to_contain_text("validation", timeout=5_000)
            inked = page.evaluate("""() => { const c = document.getElementById('curve');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
            page.fill("#prompt", "Give the colour word 1.")
            page.click("#send")
            expect(page.locator("#reply")).to_be_visible(timeout=30_000)
            reply = page.locator("#reply").inner_text()
            expect(page.locator("#jobs-table tbody tr")).to_have_count(1, timeout=10_000)
            page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
    assert inked > 200  # the loss curve was drawn
    assert reply and "No fine-tuned model" not in reply and "does not exist" not in reply
    assert all(u.startswith(f"http://127.0.0.1:{server.port}/") or u.startswith(("blob:", "data:")) for u in requests)
