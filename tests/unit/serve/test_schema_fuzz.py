"""No request makes `tunesmith serve` answer 5xx: every malformed one gets a 4xx in OpenAI's error
shape, naming the field, and the server answers the next good request as before.

Explicit cases for each kind of bad input first, then hypothesis fuzzing: valid chat, completion
and adapter requests mutated as JSON values (type swaps, lone surrogates, NaN, huge numbers, unknown
keys, wrapped values) and as bytes (inserted, deleted, replaced and repeated bytes, surrogate escapes).
The server is the tiny model through FastAPI's TestClient (no socket), max_tokens capped at 4 so
that the requests that do generate stay cheap; one test goes through a live uvicorn as well.

TUNESMITH_FUZZ_EXAMPLES sets the number of examples per fuzz test (default 300; `make fuzz` runs more).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

httpx = pytest.importorskip("httpx2")  # what starlette's TestClient runs on

KEY = "sk-fuzz"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
FUZZ_EXAMPLES = int(os.environ.get("TUNESMITH_FUZZ_EXAMPLES", "300"))
CHAT, COMPLETIONS, ADAPTERS = "/v1/chat/completions", "/v1/completions", "/v1/adapters"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """(TestClient, base model id, the adapter root, the backend) for the tiny model, key required."""
    from fastapi.testclient import TestClient

    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend

    root = tmp_path_factory.mktemp("adapters")
    (root / "escape").symlink_to(tiny_model_dir)  # a link out of the adapter dir
    (root / "loop").symlink_to(root / "loop")
    (root / "not-an-adapter").mkdir()
    (root / "a-file").write_text("{}")
    backend = TransformersBackend(str(tiny_model_dir), adapter_dirs=[str(root)])
    app = create_app(backend, api_key=KEY, max_tokens_limit=4, max_body_bytes=64_000)
    with TestClient(app, raise_server_exceptions=False) as client:  # `with`: lifespan closes the backend
        yield client, backend.base_id, root, backend


def _chat_body(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, **extra}


def assert_error(r, status: int | None = None, param: str | None = "", code: str | None = "") -> dict:
    """A 4xx in OpenAI's error shape; `param` and `code` checked when given."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    if status is not None:
        assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}, body
    err = body["error"]
    # Short, whatever the request held (an adapter path, at most 4,096 characters, may be quoted whole).
    assert isinstance(err["message"], str) and err["message"] and len(err["message"]) < 10_000, err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], str), err
    if param != "":
        assert err["param"] == param, err
    if code != "":
        assert err["code"] == code, err
    return err


def assert_serves(client, model: str) -> None:
    r = client.post(CHAT, json=_chat_body(model), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["role"] == "assistant"


def _raw(client, path: str, body: bytes | str, headers=AUTH):
    return client.post(path, content=body.encode() if isinstance(body, str) else body, headers=headers)


# --------------------------------------------------------------------------- explicit cases

# Each: (raw JSON text with {M} for the model id, the param the error must name). All are 400.
BAD_CHAT = [
    # Lone UTF-16 surrogate escapes, in every kind of string (the user's 500: content "\ud83d").
    ('{"model": "{M}", "messages": [{"role": "user", "content": "\\ud83d"}]}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "a\\udc00b"}]}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "\\ude00\\ud83d"}]}', None),  # pair reversed
    ('{"model": "{M}", "messages": [{"role": "user", "content": "\\ud83d\\u0041"}]}', None),
    ('{"model": "{M}", "messages": [{"role": "user\\ud83d", "content": "hi"}]}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi", "name": "\\udfff"}]}', None),
    ('{"model": "{M}\\ud800", "messages": [{"role": "user", "content": "hi"}]}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "user": "\\ud83d"}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "stop": "\\ud83d"}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "\\ud83d"]}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud83d"}]}]}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "metadata": {"\\ud83d": "x"}}', None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "\\ud83d": 1}', None),
    # NaN, Infinity, and numbers that parse as infinity
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "temperature"),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}', "top_p"),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "temperature": -Infinity}', "temperature"),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}', "temperature"),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400}', "max_tokens"),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": NaN}}', "logit_bias.1"),
    # Not JSON at all
    ('{"model": "{M}", "messages": [', None),
    ("{'model': '{M}'}", None),
    ('{"model": "{M}", "messages": [{"role": "user", "content": "hi"}],}', None),
    ("null", None), ("[]", None), ("5", None), ('"text"', None),
]


def _wrong(field: str, value) -> tuple[dict, str]:
    return {field: value}, field


# Each: (fields over a good chat body, the param the error must name).
WRONG_CHAT = [
    _wrong("temperature", "0.7"), _wrong("temperature", True), _wrong("temperature", []), _wrong("temperature", 3),
    _wrong("temperature", -0.5), _wrong("max_tokens", -1), _wrong("max_tokens", 0), _wrong("max_tokens", 10 ** 30),
    _wrong("max_tokens", 1.5), _wrong("max_tokens", 2.0), _wrong("max_tokens", True), _wrong("max_tokens", "2"),
    _wrong("max_tokens", 5), _wrong("max_completion_tokens", 5), _wrong("n", 0), _wrong("n", 9), _wrong("n", "2"),
    _wrong("n", 2.0), _wrong("top_p", 0), _wrong("top_p", 1.5), _wrong("top_p", "x"), _wrong("stop", 5),
    ({"stop": [1]}, "stop.0"), ({"stop": ["a", None]}, "stop.1"), _wrong("stop", ["a", "b", "c", "d", "e"]),
    _wrong("stop", ""), _wrong("stop", {"a": 1}), _wrong("seed", "1"), _wrong("seed", 1.5), _wrong("seed", [1]),
    _wrong("stream", "yes"), _wrong("stream", 1), _wrong("stream_options", []),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    _wrong("logit_bias", {"1": 5}), _wrong("logit_bias", "x"), ({"logit_bias": {"1": "x"}}, "logit_bias.1"),
    _wrong("presence_penalty", 1), _wrong("frequency_penalty", "x"), _wrong("logprobs", True), _wrong("user", 5),
    ({"metadata": {"a": 1}}, "metadata.a"), _wrong("metadata", [1]), _wrong("model", 5), _wrong("model", ""),
    _wrong("model", None), _wrong("model", ["a"]), _wrong("messages", {"role": "user", "content": "hi"}),
    _wrong("messages", []), _wrong("messages", "hi"), _wrong("messages", None), _wrong("store", "no"),
    # unknown and unsupported fields
    _wrong("temprature", 0), _wrong("tools", [{"type": "function"}]), _wrong("response_format", {"type": "json"}),
    _wrong("x" * 5000, 1),
    # messages that are not messages
    ({"messages": [5]}, "messages.0"), ({"messages": [None]}, "messages.0"), ({"messages": [[]]}, "messages.0"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"role": "tool", "content": "hi", "tool_call_id": "1"}]}, "messages.0.role"),
    ({"messages": [{"role": 5, "content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [5]}]}, "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages.0.content.0.text"),
    ({"messages": [{"role": "user", "content": "hi", "name": 5}]}, "messages.0.name"),
    ({"messages": [{"role": "user", "content": "hi", "tool_calls": []}]}, "messages.0.tool_calls"),
]


def test_bad_chat_json_is_400(server):
    client, model, *_ = server
    for text, param in BAD_CHAT:
        r = _raw(client, CHAT, text.replace("{M}", model))
        err = assert_error(r, 400, param)
        if "\\u" in text and param is None:
            assert "surrogate" in err["message"], err
        # The answer is JSON with no surrogate in it, whatever the request held.
        r.content.decode("utf-8")
    assert_serves(client, model)


@pytest.mark.parametrize("fields,param", WRONG_CHAT, ids=[f"{p}={str(f)[:40]}" for f, p in WRONG_CHAT])
def test_wrong_field_types_and_values_are_400(server, fields, param):
    client, model, *_ = server
    body = _chat_body(model)
    body.pop("max_tokens") if "max_completion_tokens" in fields else None
    r = client.post(CHAT, json={**body, **fields}, headers=AUTH)
    err = assert_error(r, 400, param[:64])
    if len(param) < 64:
        assert param.split(".")[-1] in err["message"], err  # the message names the field too
    assert_serves(client, model)


def test_valid_edges_still_answer(server):
    """What must keep working: surrogate pairs, an int for a float, any integer seed, duplicate
    keys (the last counts, as json.loads does), null for defaults, no Content-Type, tiny temperatures."""
    client, model, *_ = server
    hi = '"messages": [{"role": "user", "content": "hi"}]'
    ok = [
        '{"model": "{M}", "messages": [{"role": "user", "content": "\\ud83d\\ude00 and \\u00e9"}], "max_tokens": 1}',
        '{"model": "{M}", HI, "temperature": 1, "top_p": 1, "max_tokens": 1}',
        '{"model": "{M}", HI, "seed": ' + "9" * 4000 + ', "max_tokens": 1}',
        '{"model": "{M}", HI, "seed": -5, "max_tokens": 1}',
        '{"model": "nope", "model": "{M}", HI, "max_tokens": 1}',
        '{"model": "{M}", "messages": [{"role": "user", "content": null}], "max_tokens": null, "temperature": null,'
        ' "stop": null, "n": null, "seed": null, "stream": null, "logit_bias": {}, "presence_penalty": 0}',
        '{"model": "{M}", HI, "temperature": 1e-300, "max_tokens": 2}',
        '{"model": "{M}", HI, "temperature": 5e-324, "top_p": 5e-324, "max_tokens": 2}',
    ]
    for text in ok:
        r = _raw(client, CHAT, text.replace("{M}", model).replace("HI", hi))
        assert r.status_code == 200, (text[:120], r.text)
    r = _raw(client, CHAT, json.dumps(_chat_body(model)), headers={"Authorization": AUTH["Authorization"]})
    assert r.status_code == 200, r.text  # no Content-Type: taken as JSON, as before
    utf8 = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    r = _raw(client, CHAT, json.dumps(_chat_body(model)), headers=utf8)
    assert r.status_code == 200, r.text


def test_bytes_that_are_not_utf8_json_are_400(server):
    client, model, *_ = server
    good = json.dumps(_chat_body(model)).encode()
    for body, needle in ((good.replace(b"Hi", b"\xff\xfe"), "UTF-8"),
                         (good.replace(b"Hi", b"\xed\xa0\xbd"), "UTF-8"),  # a surrogate written as UTF-8
                         (good.replace(b"Hi", "\u00e9".encode("latin-1")), "UTF-8"),
                         (good[:-1], "JSON"), (b"\x00" * 10, "JSON")):
        assert needle in assert_error(_raw(client, CHAT, body), 400)["message"]
    for body in (b"", b"   \n"):
        assert "empty" in assert_error(_raw(client, CHAT, body), 400)["message"]
    assert _raw(client, CHAT, b"\xef\xbb\xbf" + good).status_code == 200  # a UTF-8 byte-order mark, as before
    assert_serves(client, model)


def test_deep_nesting_and_huge_numbers_are_400(server):
    client, model, *_ = server
    good = json.dumps(_chat_body(model))
    for depth in (300, 5000, 25_000):  # 25,000 levels: 50 kB, inside this server's 64 kB body limit
        nested = good[:-1] + ', "user": ' + "[" * depth + "]" * depth + "}"
        assert "nested too deeply" in assert_error(_raw(client, CHAT, nested), 400)["message"]
    assert "nested too deeply" in assert_error(_raw(client, CHAT, '{"a":' * 5000 + "1" + "}" * 5000), 400)["message"]
    for field in ("max_tokens", "seed", "n", "temperature"):
        huge = good[:-1] + f', "{field}": ' + "9" * 5000 + "}"
        assert "too large" in assert_error(_raw(client, CHAT, huge), 400)["message"]
    err = assert_error(client.post(CHAT, json=_chat_body(model, max_tokens=10 ** 4000), headers=AUTH), 400,
                       "max_tokens")
    assert len(err["message"]) < 300  # the number is shortened
    assert_serves(client, model)


def test_content_type_must_be_json(server):
    client, model, *_ = server
    body = json.dumps(_chat_body(model))
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "json"):
        assert_error(_raw(client, CHAT, body, headers={**AUTH, "Content-Type": kind}), 415,
                     code="unsupported_media_type")
    assert_serves(client, model)


def test_model_prompt_length_and_key(server):
    client, model, *_ = server
    assert_error(client.post(CHAT, json=_chat_body("nope"), headers=AUTH), 404, "model", "model_not_found")
    err = assert_error(client.post(CHAT, json=_chat_body("m" * 50_000), headers=AUTH), 404, "model")
    assert len(err["message"]) < 300  # the unknown id is not echoed whole
    long = _chat_body(model, messages=[{"role": "user", "content": "hi " * 3000}])
    assert_error(client.post(CHAT, json=long, headers=AUTH), 400, "messages", "context_length_exceeded")
    assert_error(client.post(CHAT, json=_chat_body(model, user="x" * 70_000), headers=AUTH), 413,
                 code="request_too_large")
    # Without the key, a malformed body is a 401 all the same: nothing is read before the key.
    for headers in ({"Content-Type": "application/json"}, {**AUTH, "Authorization": "Bearer sk-wrong"}):
        for path in (CHAT, COMPLETIONS, ADAPTERS, "/v1/models", "/v1/adapters/x"):
            r = client.post(path, content=b'{"\\ud83d', headers=headers)
            assert_error(r, 401, code="invalid_api_key")
    assert_serves(client, model)


def test_streaming_requests_with_bad_input_fail_before_the_stream(server):
    client, model, *_ = server
    for fields, status in (({"temperature": "x"}, 400), ({"model": "nope"}, 404), ({"max_tokens": 99}, 400),
                           ({"stream_options": {"include_usage": 1}}, 400)):
        r = client.post(CHAT, json={**_chat_body(model, stream=True), **fields}, headers=AUTH)
        assert_error(r, status)
    text = '{"model": "{M}", "stream": true, "messages": [{"role": "user", "content": "\\ud83d"}]}'
    assert_error(_raw(client, CHAT, text.replace("{M}", model)), 400)
    r = client.post(CHAT, json=_chat_body(model, stream=True, max_tokens=2), headers=AUTH)
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n") and '"error"' not in r.text


def test_completion_prompts(server):
    client, model, *_ = server
    for prompt, param, needle in (([1, 2, 3], "prompt", "token-id"), ([[1, 2], [3]], "prompt", "token-id"),
                                  ([], "prompt", "1 to 8"), (["a"] * 9, "prompt", "1 to 8"),
                                  (["a", 5], "prompt.1", "string"), (5, "prompt", "string"),
                                  (None, "prompt", "string"), ({"text": "a"}, "prompt", "string"),
                                  ("", "prompt", "empty"), ([""], "prompt", "empty")):
        r = client.post(COMPLETIONS, json={"model": model, "prompt": prompt, "max_tokens": 1}, headers=AUTH)
        assert needle in assert_error(r, 400, param)["message"]
    assert_error(client.post(COMPLETIONS, json={"model": model, "max_tokens": 1}, headers=AUTH), 400, "prompt")
    # prompts x n above the batch size (8): refused, not run as one oversized batch
    r = client.post(COMPLETIONS, json={"model": model, "prompt": ["a", "b"], "n": 8, "max_tokens": 1}, headers=AUTH)
    assert "16 completions" in assert_error(r, 400, "n")["message"]
    for fields in ({"echo": True}, {"best_of": 2}, {"suffix": "x"}, {"logprobs": 2}, {"logprobs": "x"}):
        assert_error(client.post(COMPLETIONS, json={"model": model, "prompt": "a", **fields}, headers=AUTH), 400,
                     next(iter(fields)))
    r = client.post(COMPLETIONS, json={"model": model, "prompt": ["a", "b"], "n": 4, "max_tokens": 1}, headers=AUTH)
    assert r.status_code == 200 and len(r.json()["choices"]) == 8


def test_adapter_paths_from_clients_are_confined(server, tiny_model_dir):
    client, model, root, _ = server
    for path, status in (("../../../etc", 403), ("/etc", 403), (str(tiny_model_dir), 403), ("escape", 403),
                         ("escape/../escape", 403), (str(root / "escape"), 403), ("not-an-adapter/../..", 403),
                         ("not-an-adapter", 400), ("a-file", 400), ("loop", 400), ("missing", 400),
                         ("a" * 300, 400), ("a/" * 2000, 400), ("x" * 5000, 400), ("a\x00b", 400), ("", 400)):
        r = client.post(ADAPTERS, json={"name": "x", "path": path}, headers=AUTH)
        err = assert_error(r, status, "path")
        if status == 403:
            assert err["type"] == "permission_error"
    for body, param in (({"name": "../x", "path": "a"}, "name"), ({"name": "", "path": "a"}, "name"),
                        ({"name": "x" * 200, "path": "a"}, "name"), ({"name": 5, "path": "a"}, "name"),
                        ({"name": "x", "path": 5}, "path"), ({"name": "x"}, "path"), ({"path": "a"}, "name"),
                        ({"name": "x", "path": ["a"]}, "path"), ({"name": "x", "path": "a", "force": True}, "force")):
        assert_error(client.post(ADAPTERS, json=body, headers=AUTH), 400, param)
    assert_error(_raw(client, ADAPTERS, '{"name": "x", "path": "\\ud83d"}'), 400)
    assert_error(client.post(ADAPTERS, json={"name": model, "path": "escape"}, headers=AUTH), 409, "name")
    for name in ("nope", "..", "%2e%2e", "a" * 3000):
        assert_error(client.delete(f"/v1/adapters/{name}", headers=AUTH), 404)
    assert_error(client.delete(f"/v1/adapters/{model}", headers=AUTH), 400)
    assert [m["id"] for m in client.get("/v1/models", headers=AUTH).json()["data"]] == [model]
    assert_serves(client, model)


# --------------------------------------------------------------------------- live server


def test_lone_surrogate_over_a_live_uvicorn(server):
    """The user's report, end to end through uvicorn and a real socket: 400, then a good answer."""
    import uvicorn

    from tunesmith.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = server[3]  # a second app over the same backend, as `tunesmith serve` runs it
    live = uvicorn.Server(uvicorn.Config(create_app(backend, api_key=KEY, max_tokens_limit=4), host="127.0.0.1",
                                         port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not live.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        bad = f'{{"model": "{backend.base_id}", "messages": [{{"role": "user", "content": "\\ud83d"}}]}}'
        for stream in (False, True):
            body = bad[:-1] + f', "stream": {json.dumps(stream)}}}'
            err = assert_error(httpx.post(url, content=body.encode(), headers=AUTH, timeout=30), 400)
            assert "surrogate" in err["message"]
        r = httpx.post(url, json=_chat_body(backend.base_id), headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"
    finally:
        live.should_exit = True
        thread.join(timeout=30)


# --------------------------------------------------------------------------- fuzzing

# CI: a fixed set of examples (derandomized, no example database), so a run is repeatable;
# `make fuzz` sets TUNESMITH_FUZZ_EXAMPLES and explores with random seeds.
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                derandomize="TUNESMITH_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

lone_surrogate = st.integers(0xD800, 0xDFFF).map(chr)  # json.dumps writes these as \\udXXX escapes
text = st.lists(st.one_of(st.characters(), lone_surrogate), max_size=12).map("".join)
# Integers up to 4,299 digits: json.dumps cannot write longer ones (the explicit cases send those).
scalar = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.integers(), st.integers(-10 ** 4299, 10 ** 4299),
                   st.floats(), st.sampled_from([0, 1, 2, 4, 8, 9, -1, 0.5, 1e-300, 5e-324, 1e308]), text,
                   st.sampled_from(["user", "system", "assistant", "developer", "tool", "text", "image_url"]))
json_value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(text, inner, max_size=4)), max_leaves=8)
KEYS = ["model", "messages", "role", "content", "type", "text", "name", "temperature", "top_p", "max_tokens", "n",
        "stop", "seed", "stream", "stream_options", "include_usage", "user", "logit_bias", "prompt", "path",
        "max_completion_tokens", "metadata", "logprobs", "echo", "best_of", "presence_penalty"]


def _seeds(model: str) -> list[tuple[str, dict]]:
    """Valid requests that the fuzzers start from: each answers 200 as it is."""
    chat = {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                                         {"role": "assistant", "content": "Hello", "name": "bot"},
                                         {"role": "user", "content": "Go on"}],
            "max_tokens": 2, "temperature": 0.5, "top_p": 0.9, "stop": ["\n"], "seed": 1, "n": 2, "user": "u"}
    return [(CHAT, chat),
            (CHAT, {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 2,
                    "stream": True, "stream_options": {"include_usage": True}, "metadata": {"k": "v"}}),
            (COMPLETIONS, {"model": model, "prompt": ["One,", "Two,"], "max_tokens": 2, "n": 2, "stop": "x",
                           "temperature": 0}),
            (COMPLETIONS, {"model": model, "prompt": "Once", "max_tokens": 2, "stream": True, "seed": 3}),
            (ADAPTERS, {"name": "fuzz", "path": "missing"})]


def _slots(value, out: list) -> list:
    """Every (container, key) pair inside a JSON value, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append((value, k))
        _slots(v, out)
    return out


# One value of each JSON type, for type swaps.
OTHER_TYPES = [None, True, 0, 1, -1, 2.5, "1", "", [], [1], {}, {"a": 1}]


def _mutate(body, data):
    """One JSON-level change somewhere in `body`: replace a value, swap its type, put a lone
    surrogate into a string, drop or add a key, wrap or unwrap a value; returns the new body."""
    slots = [(None, None)] + _slots(body, [])
    container, key = data.draw(st.sampled_from(slots))
    action = data.draw(st.sampled_from(["replace", "swap", "surrogate", "drop", "add", "wrap", "unwrap"]))
    if container is None:  # the whole body
        if action == "add" and isinstance(body, dict):
            body[data.draw(st.one_of(st.sampled_from(KEYS), text))] = data.draw(json_value)
        return data.draw(json_value) if action == "replace" else [body] if action == "wrap" else body
    old = container[key]
    if action == "replace":
        container[key] = data.draw(json_value)
    elif action == "swap":
        other = data.draw(st.sampled_from([v for v in OTHER_TYPES if type(v) is not type(old)]))
        container[key] = copy.deepcopy(other)  # a later mutation must not change OTHER_TYPES itself
    elif action == "surrogate" and isinstance(old, str):
        at = data.draw(st.integers(0, len(old)))
        container[key] = old[:at] + data.draw(lone_surrogate) + old[at:]
    elif action == "drop":
        container.pop(key)
    elif action == "wrap":
        container[key] = data.draw(st.sampled_from([[old], {"value": old}, [old, old]]))
    elif action == "unwrap" and isinstance(old, (list, dict)) and old:
        container[key] = next(iter(old.values())) if isinstance(old, dict) else old[0]
    elif isinstance(old, dict):
        old[data.draw(st.one_of(st.sampled_from(KEYS), text))] = data.draw(json_value)
    return body


def _encode(body, data) -> bytes:
    """JSON text as a client might send it, NaN and Infinity included, surrogates escaped or raw."""
    raw = json.dumps(body, allow_nan=True, ensure_ascii=data.draw(st.booleans()))
    return raw.encode("utf-8", "surrogatepass")  # a raw surrogate becomes 3 invalid UTF-8 bytes


def check(r) -> None:
    """Never 5xx; a 4xx is OpenAI's error shape; a 200 is JSON, or SSE with no error event."""
    event(f"HTTP {r.status_code}")  # pytest --hypothesis-show-statistics: how many got through to generation
    assert r.status_code < 500, (r.status_code, r.text[:1000])
    if r.status_code >= 400:
        assert_error(r)
    elif r.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
        assert events and events[-1] == "[DONE]", r.text[-300:]
        assert not any("error" in json.loads(e) for e in events[:-1]), r.text[:1000]
    else:
        assert r.status_code == 200 and isinstance(r.json(), dict), r.text[:500]


@FUZZ
@given(data=st.data())
def test_fuzz_json_values(server, data):
    client, model, *_ = server
    path, body = data.draw(st.sampled_from(_seeds(model)))
    body = copy.deepcopy(body)
    for _ in range(data.draw(st.integers(1, 3))):
        body = _mutate(body, data)
    check(client.post(path, content=_encode(body, data), headers=AUTH))


byte_edit = st.tuples(st.sampled_from(["insert", "delete", "replace", "surrogate", "duplicate"]),
                      st.floats(0, 1), st.binary(min_size=1, max_size=6), st.integers(0xD800, 0xDFFF))


@FUZZ
@given(data=st.data(), edits=st.lists(byte_edit, min_size=1, max_size=4))
def test_fuzz_bytes(server, data, edits):
    client, model, *_ = server
    path, body = data.draw(st.sampled_from(_seeds(model)))
    raw = bytearray(json.dumps(body).encode())
    for op, where, blob, surrogate in edits:
        at = int(where * len(raw))
        if op == "insert":
            raw[at:at] = blob
        elif op == "delete":
            del raw[at:at + len(blob)]
        elif op == "replace":
            raw[at:at + len(blob)] = blob
        elif op == "surrogate":  # most land inside a string: a lone \udXXX escape
            raw[at:at] = f"\\u{surrogate:04x}".encode()
        else:  # a span written twice: duplicate keys, doubled brackets, broken structure
            raw[at:at] = raw[at:at + len(blob) * 4]
    check(client.post(path, content=bytes(raw), headers=AUTH))


def test_still_serves_after_fuzzing(server):
    client, model, *_ = server
    assert_serves(client, model)
    health = client.get("/health").json()
    assert health["in_flight"] == 0  # every admitted request released its ticket
