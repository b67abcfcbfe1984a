"""The chat page served at `/` (tunesmith/serve/static/index.html), driven in the system Chromium
through playwright against the real server (tiny model + one LoRA adapter trained 2 steps): the model
picker lists what GET /v1/models lists, a streamed reply equals the server's non-streamed answer to
the very request the page sent, the conversation and the picked adapter travel with every request,
errors come out of OpenAI's error shape onto the page, Stop and Clear work, model text stays text."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
STATIC = Path(__file__).resolve().parents[3] / "tunesmith" / "serve" / "static"
KEY = "sk-chat-page-test"
ADAPTER = "terse"
# Set CHAT_PAGE_SHOT=/some/file.png to keep the screenshot somewhere you can look at it.
SHOT_ENV = "CHAT_PAGE_SHOT"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn in a thread of this process, stopped through its should_exit flag."""

    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _train_adapter(tiny_config: dict) -> Path:
    import tunesmith

    # A high learning rate, so that 3 steps move the adapter's greedy answer off the random base's.
    cfg = dict(tiny_config, name="chat-page", lora=dict(tiny_config["lora"], alpha=16))
    cfg["data"] = dict(cfg["data"], validation_fraction=0.0)
    cfg["train"] = dict(cfg["train"], max_steps=3, save_steps=3, learning_rate=5e-2)
    del cfg["train"]["eval_steps"]
    return Path(tunesmith.train(cfg, show_progress=False))


def _replies(page) -> list[str]:
    """textContent of every message body in the conversation view, in order (user and assistant)."""
    return page.eval_on_selector_all(".msg .body", "els => els.map(e => e.textContent)")


def _wait_finished(page, n_assistant: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('.msg.assistant').length === n && "
        "!document.querySelector('.msg.assistant[data-state=streaming]')", arg=n_assistant, timeout=30_000)


def test_chat_page_in_chromium(tiny_config, tmp_path, request):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make setup does, as root)")
    import httpx2  # httpx's current name on PyPI (the openai client depends on it)
    from playwright.sync_api import sync_playwright

    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend

    run_dir = _train_adapter(tiny_config)
    backend = TransformersBackend(str(run_dir), adapters={ADAPTER: str(run_dir / "adapter")})
    request.addfinalizer(backend.close)  # its worker thread, however the test ends
    app = create_app(backend, api_key=KEY, static_dir=STATIC)
    auth = {"Authorization": f"Bearer {KEY}"}

    with LiveServer(app) as live, sync_playwright() as p:
        api = httpx2.Client(base_url=live.url, timeout=60)
        ids = [m["id"] for m in api.get("/v1/models", headers=auth).json()["data"]]
        assert ADAPTER in ids and len(ids) == 2, ids
        base = next(i for i in ids if i != ADAPTER)
        wrong_key_error = api.get("/v1/models", headers={"Authorization": "Bearer wrong"}).json()["error"]
        missing_key_error = api.get("/v1/models").json()["error"]

        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            urls: list[str] = []
            chats: list = []  # the page's POST /v1/chat/completions requests, in order
            page_errors: list[str] = []
            page.on("request", lambda r: urls.append(r.url))
            page.on("request", lambda r: chats.append(r) if r.url.endswith("/v1/chat/completions") else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(live.url + "/")

            # No key yet: the model list answers 401 and the page shows the server's message.
            page.locator("#error").wait_for(state="visible")
            assert page.locator("#error .detail").text_content() == missing_key_error["message"]
            assert "401" in page.locator("#error .kind").text_content()

            # The key goes in the field (and localStorage); the picker then lists base + adapter.
            page.fill("#api-key", KEY)
            page.press("#api-key", "Enter")
            page.wait_for_function("n => document.querySelectorAll('#model option').length === n", arg=len(ids))
            assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == ids
            assert page.locator("#error").is_hidden()
            assert page.evaluate("localStorage.getItem('tunesmith.apiKey')") == KEY

            # Turn 1 on the base model, greedy. Shift+Enter is a newline, Enter sends.
            page.select_option("#model", base)
            page.fill("#system", "You answer in one short sentence.")
            page.fill("#temperature", "0")
            page.fill("#max-tokens", "24")
            page.fill("#input", "Name a colour <b>please</b>")
            page.press("#input", "Shift+Enter")
            page.locator("#input").press_sequentially("and a fruit.")
            assert chats == []
            page.press("#input", "Enter")
            _wait_finished(page, 1)
            first = chats[0]
            sent = json.loads(first.post_data)
            assert first.headers["authorization"] == f"Bearer {KEY}"
            assert sent == {"model": base, "stream": True, "temperature": 0, "max_tokens": 24, "messages": [
                {"role": "system", "content": "You answer in one short sentence."},
                {"role": "user", "content": "Name a colour <b>please</b>\nand a fruit."}]}
            # The same request, not streamed, from the same server: the page's text must equal it.
            plain = api.post("/v1/chat/completions", headers=auth, json=dict(sent, stream=False)).json()
            answer1 = plain["choices"][0]["message"]["content"]
            assert answer1, plain  # the random base repeats "\n"; the adapter below says words
            texts = _replies(page)
            assert texts == ["Name a colour <b>please</b>\nand a fruit.", answer1]
            assert page.locator("#log b").count() == 0  # the user's markup stayed text
            reply1 = page.locator(".msg.assistant").nth(0)
            assert reply1.get_attribute("data-state") == "done"
            assert reply1.locator(".model").text_content() == base  # the id the server's chunks carried
            chunks = int(re.search(r"(\d+) chunks", reply1.locator(".info").text_content()).group(1))
            assert chunks > 1  # streamed piece by piece, not one blob

            # Turn 2 on the adapter: the whole conversation goes with the request.
            page.select_option("#model", ADAPTER)
            page.fill("#input", "Another one?")
            page.press("#input", "Enter")
            _wait_finished(page, 2)
            sent2 = json.loads(chats[1].post_data)
            assert sent2["model"] == ADAPTER
            assert sent2["messages"] == sent["messages"] + [
                {"role": "assistant", "content": answer1}, {"role": "user", "content": "Another one?"}]
            plain2 = api.post("/v1/chat/completions", headers=auth, json=dict(sent2, stream=False)).json()
            assert plain2["model"] == ADAPTER
            answer2 = plain2["choices"][0]["message"]["content"]
            assert answer2.strip() and answer2 != answer1  # the adapter answers, and not as the base does
            assert _replies(page)[3] == answer2
            assert page.locator(".msg.assistant").nth(1).locator(".model").text_content() == ADAPTER
            shot = Path(os.environ.get(SHOT_ENV) or tmp_path / "chat_page.png")
            page.set_viewport_size({"width": 1100, "height": 1200})  # both turns in one picture
            page.screenshot(path=str(shot))
            page.set_viewport_size({"width": 1100, "height": 760})

            # A wrong key: the model list and then the chat request fail, the page says why, and the
            # failed turn goes back into the message box instead of into the conversation.
            page.fill("#api-key", "wrong")
            page.press("#api-key", "Enter")
            page.locator("#error").wait_for(state="visible")
            page.click("#error-close")
            page.fill("#input", "Still there?")
            page.press("#input", "Enter")
            page.locator("#error").wait_for(state="visible")
            assert len(chats) == 3 and chats[2].response().status == 401
            assert page.locator("#error .detail").text_content() == wrong_key_error["message"]
            assert "401" in page.locator("#error .kind").text_content()
            assert len(_replies(page)) == 4 and page.input_value("#input") == "Still there?"

            # Stop mid-reply keeps what came; Clear empties the view and the next request's history.
            page.fill("#api-key", KEY)
            page.press("#api-key", "Enter")
            page.locator("#error").wait_for(state="hidden")
            page.fill("#max-tokens", "900")
            page.press("#input", "Enter")
            page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 3 && "
                                   "document.querySelectorAll('.msg.assistant')[2].textContent.length > 0")
            page.click("#stop")
            _wait_finished(page, 3)
            stopped = page.locator(".msg.assistant").nth(2)
            assert stopped.get_attribute("data-state") == "stopped"  # only an AbortError sets it
            assert stopped.locator(".body").text_content()  # what came before Stop stays
            page.click("#clear")
            assert page.locator(".msg").count() == 0
            page.fill("#max-tokens", "4")
            page.fill("#input", "Hi")
            page.press("#input", "Enter")
            _wait_finished(page, 1)
            assert [m["role"] for m in json.loads(chats[4].post_data)["messages"]] == ["system", "user"]
        finally:
            browser.close()
            api.close()
    assert page_errors == []
    assert all(u.startswith(live.url + "/") for u in urls), urls  # nothing fetched from anywhere else
