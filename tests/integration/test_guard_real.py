"""Guarded serving on the embedded SmolLM2: asked to repeat an email address and a phone number
(greedy), the model does; the unguarded server passes them through and the guarded one redacts
them, streamed and not, through the official `openai` client."""

from __future__ import annotations

import socket
import threading
import time

import pytest

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.integration

ASK = "Repeat exactly: my email is jane.doe@example.com and my phone is +44 20 7946 0958"


def _live(app):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0,
                                         timeout=120)


def test_the_real_model_repeats_pii_and_the_guard_redacts_it(smollm2_dir):
    from tunesmith.data.pii import find_pii, redact
    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend
    from tunesmith.serve.guard import load_guard

    backend = TransformersBackend(str(smollm2_dir))
    plain = _live(create_app(backend))
    guarded = _live(create_app(backend, guard=load_guard(stages="input,output")))
    try:
        def ask(client, stream=False):
            r = client.chat.completions.create(model=backend.base_id, messages=[{"role": "user", "content": ASK}],
                                               temperature=0, max_tokens=48, stream=stream)
            if not stream:
                return r.choices[0].message.content, r.choices[0].finish_reason
            chunks = list(r)
            return ("".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
                    [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason][-1])

        text, reason = ask(plain[2])
        found = find_pii(text)
        assert "jane.doe@example.com" in text.lower() and {m.type for m in found} == {"email", "phone"}, text
        expected = redact(text, found)
        assert "example.com" not in expected
        assert ask(guarded[2]) == (expected, reason)
        assert ask(guarded[2], stream=True) == (expected, reason)
    finally:
        for server, thread, _ in (plain, guarded):
            server.should_exit = True
            thread.join(timeout=30)
        backend.close()
