"""`tunesmith serve` through the official `openai` client against a live uvicorn on 127.0.0.1.

The server holds the tiny model with two LoRA adapters trained a few steps at a high learning rate,
so that their greedy answers differ: run "a" (served as the run) and run "b" (--adapter b=...).
Each adapter's answer through the server must equal tunesmith.inference on that run."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx2")

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "train.jsonl"
KEY = "sk-test-serve"
ASK = [{"role": "user", "content": "Name a colour."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """uvicorn in a thread of this process, stopped through its should_exit flag."""

    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def client(self, key: str = KEY):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _train(tmp: Path, tiny_model_dir: Path, name: str, seed: int, lines: slice) -> Path:
    import tunesmith

    data = tmp / f"{name}.jsonl"
    data.write_text("\n".join(QUICKSTART.read_text().splitlines()[lines]) + "\n")
    return Path(tunesmith.train({
        "name": name, "output_dir": str(tmp / "runs"), "seed": seed,
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": [str(data)], "validation_fraction": 0.0, "max_length": 128},
        "train": {"max_steps": 3, "batch_size": 4, "learning_rate": 5e-2, "logging_steps": 1, "save_steps": 3,
                  "precision": "fp32"},
        "lora": {"r": 4, "alpha": 16, "dropout": 0.0},
    }, show_progress=False))


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model_dir):
    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend

    tmp = tmp_path_factory.mktemp("serve")
    run_a = _train(tmp, tiny_model_dir, "a", 1, slice(0, 12))
    run_b = _train(tmp, tiny_model_dir, "b", 2, slice(12, 24))
    backend = TransformersBackend(str(run_a), adapters={"b": str(run_b)}, adapter_dirs=[str(tmp / "runs")])
    live = Live(create_app(backend, api_key=KEY, max_tokens_limit=64))
    yield {"live": live, "backend": backend, "run_a": run_a, "run_b": run_b, "base": tiny_model_dir,
           "client": live.client()}
    live.stop()
    backend.close()


def _chat(client, model: str, messages=ASK, **kw):
    return client.chat.completions.create(model=model, messages=messages, max_tokens=kw.pop("max_tokens", 12),
                                          temperature=kw.pop("temperature", 0), **kw)


def test_models_are_base_and_adapters(env):
    ids = [m.id for m in env["client"].models.list()]
    assert ids == [env["base"].name, "a", "b"]
    assert env["client"].models.retrieve("b").id == "b"


def test_each_adapter_answers_as_inference_does(env):
    """Switching adapters per request: each model id gives that adapter's own greedy answer."""
    from tunesmith import inference

    client = env["client"]
    got = {m: _chat(client, m).choices[0].message.content for m in (env["base"].name, "a", "b")}
    for model, source in ((env["base"].name, env["base"]), ("a", env["run_a"]), ("b", env["run_b"])):
        expected = inference.generate(inference.load(str(source)), [ASK], max_new_tokens=12)[0]
        assert got[model].strip() == expected, model
    assert got["a"] != got["b"] and got["a"] != got[env["base"].name]  # the adapters really differ
    # Back to a after b: nothing of b stays active.
    assert _chat(client, "a").choices[0].message.content == got["a"]


def test_chat_response_shape_and_usage(env):
    r = _chat(env["client"], "a", max_tokens=5)
    assert r.object == "chat.completion" and r.model == "a" and len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    tok = env["backend"].tokenizer
    prompt = tok.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True)
    assert r.usage.prompt_tokens == len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert (choice.finish_reason == "length") == (r.usage.completion_tokens == 5)


def test_stream_reassembles_to_the_plain_answer(env):
    client = env["client"]
    plain = _chat(client, "b", max_tokens=16)
    chunks = list(_chat(client, "b", max_tokens=16, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == "b" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # token by token
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # usage chunk last


def test_completions_continue_raw_text(env):
    client = env["client"]
    r = client.completions.create(model="a", prompt="The capital of France is", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and len(r.choices) == 1
    assert r.choices[0].text and r.usage.completion_tokens <= 6
    # A list of prompts with n=2: prompt i's choices are at indexes 2i and 2i+1.
    r2 = client.completions.create(model="a", prompt=["The capital of France is", "One, two,"], n=2,
                                   max_tokens=6, temperature=0)
    assert [c.index for c in r2.choices] == [0, 1, 2, 3]
    assert r2.choices[0].text == r2.choices[1].text == r.choices[0].text  # greedy: same continuation
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="a", prompt="The capital of France is", max_tokens=6, temperature=0, stream=True) if c.choices)
    assert streamed == r.choices[0].text


def test_stop_strings_cut_the_answer(env):
    client = env["client"]
    full = client.completions.create(model="b", prompt="One, two,", max_tokens=16, temperature=0).choices[0]
    text = full.text
    assert len(text) > 4
    stop = text[2:4]  # two characters from inside the answer: it must end just before them
    cut = client.completions.create(model="b", prompt="One, two,", max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[:text.find(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="b", prompt="One, two,", max_tokens=16, temperature=0, stop=stop, stream=True) if c.choices)
    assert streamed == cut.choices[0].text


def test_n_choices_and_seeded_sampling(env):
    client = env["client"]
    r = _chat(client, "a", n=2, temperature=1.0, seed=7, max_tokens=10)
    assert [c.index for c in r.choices] == [0, 1]
    again = _chat(client, "a", n=2, temperature=1.0, seed=7, max_tokens=10)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]
    assert r.choices[0].message.content != r.choices[1].message.content  # n choices are not copies
    other = _chat(client, "a", temperature=1.0, seed=8, max_tokens=10)
    assert other.choices[0].message.content != r.choices[0].message.content


def test_wrong_or_missing_key_is_refused(env):
    with pytest.raises(openai.AuthenticationError) as e:
        env["live"].client("sk-wrong").models.list()
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    raw = httpx.post(env["live"].url + "/v1/chat/completions", json={"model": "a", "messages": ASK})
    assert raw.status_code == 401 and raw.json()["error"]["type"] == "invalid_request_error"


def test_malformed_and_invalid_bodies_are_400(env):
    url, auth = env["live"].url + "/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}
    bad = httpx.post(url, content=b'{"model": "a", "messages": [', headers={**auth, "Content-Type": "application/json"})
    assert bad.status_code == 400
    err = bad.json()["error"]
    assert err["type"] == "invalid_request_error" and "JSON" in err["message"]
    for body, param in (({"model": "a", "messages": ASK, "temperature": 5}, "temperature"),
                        ({"model": "a", "messages": []}, "messages"),
                        ({"model": "a", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
                        ({"model": "a", "messages": ASK, "temprature": 0}, "temprature"),
                        ({"model": "a", "messages": ASK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
                        ({"model": "a", "messages": ASK, "max_tokens": 65}, "max_tokens"),
                        ({"messages": ASK}, "model")):
        r = httpx.post(url, json=body, headers=auth)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param, r.json()
    with pytest.raises(openai.BadRequestError):
        _chat(env["client"], "a", presence_penalty=1.0)


def test_unknown_model_is_404(env):
    with pytest.raises(openai.NotFoundError) as e:
        _chat(env["client"], "nope")
    assert e.value.body["code"] == "model_not_found" and "nope" in e.value.body["message"]


def test_body_over_the_limit_is_413(env):
    big = {"model": "a", "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    r = httpx.post(env["live"].url + "/v1/chat/completions", json=big, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    # Chunked, with no Content-Length to check up front: cut off while it is read.
    chunks = (b"x" * 100_000 for _ in range(12))
    r = httpx.post(env["live"].url + "/v1/completions", content=chunks,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large", r.text


def test_adapters_load_and_unload_inside_adapter_dirs_only(env):
    live, client = env["live"], env["client"]
    auth = {"Authorization": f"Bearer {KEY}"}
    post = lambda body: httpx.post(live.url + "/v1/adapters", json=body, headers=auth)  # noqa: E731
    # Outside the adapter dirs, however it is spelt: refused before any file is read.
    for path in ("../../../etc", "/etc", str(env["base"]), "b/../../../.."):
        r = post({"name": "evil", "path": path})
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["type"] == "permission_error"
    for name in ("../x", "a/b", "", "x y"):
        assert post({"name": name, "path": "b"}).status_code == 400, name
    assert post({"name": "a", "path": "b"}).status_code == 409  # ids are unique
    assert httpx.post(live.url + "/v1/adapters", json={"name": "c", "path": "b"}).status_code == 401
    # Inside: a relative path under an adapter dir (the run "b" again, under a new id).
    r = post({"name": "b.copy", "path": "b"})
    assert r.status_code == 200, r.text
    assert "b.copy" in [m.id for m in client.models.list()]
    assert _chat(client, "b.copy").choices[0].message.content == _chat(client, "b").choices[0].message.content
    assert httpx.delete(live.url + "/v1/adapters/b.copy", headers=auth).json()["deleted"] is True
    assert "b.copy" not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError):
        _chat(client, "b.copy")
    assert httpx.delete(live.url + "/v1/adapters/b.copy", headers=auth).status_code == 404
    assert httpx.delete(live.url + f"/v1/adapters/{env['base'].name}", headers=auth).status_code == 400


def test_full_queue_answers_503_with_retry_after(env):
    """max_concurrent=1, max_queue=0: while one request is in flight the next is turned away."""
    from tunesmith.serve.app import create_app

    backend = env["backend"]
    app = create_app(backend, api_key=KEY, max_concurrent=1, max_queue=0)
    live = Live(app)
    answers = []
    try:
        with backend.model_lock:  # the worker cannot generate: the first request stays in flight
            t = threading.Thread(target=lambda: answers.append(_chat(live.client(), "a", max_tokens=4)))
            t.start()
            deadline = time.monotonic() + 20
            while app.state.admission.active < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            r = httpx.post(live.url + "/v1/chat/completions", json={"model": "a", "messages": ASK},
                           headers={"Authorization": f"Bearer {KEY}"})
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "overloaded"
            with pytest.raises(openai.InternalServerError) as e:
                _chat(live.client(), "a")
            assert e.value.status_code == 503
        t.join(timeout=60)
        assert answers and answers[0].choices[0].message.content is not None
        assert app.state.admission.active == 0  # released: the next request is admitted
        assert _chat(live.client(), "a", max_tokens=2).choices
    finally:
        live.stop()


def test_concurrent_requests_are_batched_with_their_own_adapter_and_sampling(env):
    """8 requests at once over base, a and b, greedy and seeded: one batch, same answers as alone."""
    client, backend = env["client"], env["backend"]
    models = [env["base"].name, "a", "b"]
    asks = [dict(model=models[i % 3], temperature=(0 if i % 2 else 1.0), seed=100 + i) for i in range(8)]
    alone = [_chat(client, **kw).choices[0].message.content for kw in asks]
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = _chat(client, **asks[i]).choices[0].message.content

    batches = backend.stats["batches"]
    with backend.model_lock:  # hold the worker until all 8 are queued: they then go as one batch
        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while _in_flight(env) < 8:
            assert time.monotonic() < deadline, _in_flight(env)
            time.sleep(0.01)
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 8
    assert backend.stats["batches"] == batches + 1 and backend.stats["last_batch"] == 8
    assert [results[i] for i in range(8)] == alone


def _in_flight(env) -> int:
    r = httpx.get(env["live"].url + "/health")
    return r.json()["in_flight"]


def test_chat_page_is_served(env, tmp_path):
    from tunesmith.serve.app import PLACEHOLDER, create_app

    page = httpx.get(env["live"].url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    app = create_app(env["backend"], static_dir=tmp_path)  # no index.html there: the placeholder
    live = Live(app)
    try:
        assert httpx.get(live.url + "/").text == PLACEHOLDER
    finally:
        live.stop()


def test_exposure_warning_and_vllm_refusal(env, tmp_path):
    from tunesmith.errors import TunesmithError
    from tunesmith.serve.app import exposure_warning, serve
    from tunesmith.serve.backends import vllm_command

    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("0.0.0.0", "k") is None
    assert "WITHOUT an API key" in exposure_warning("0.0.0.0", None)
    cmd = vllm_command("/m/base", {"b": str(env["run_b"])}, host="0.0.0.0", port=9, api_key="k",
                       max_concurrent=4, served_name="base")
    assert cmd[:3] == ["vllm", "serve", "/m/base"] and f"b={env['run_b'] / 'adapter'}" in cmd
    assert cmd[cmd.index("--max-lora-rank") + 1] == "4" and cmd[cmd.index("--api-key") + 1] == "k"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(TunesmithError, match="CUDA"):
            serve(str(env["run_a"]), backend="vllm")
    with pytest.raises(TunesmithError, match="backend"):
        serve(str(env["run_a"]), backend="tgi")


def test_llamacpp_backend_on_the_embedded_gguf(tmp_path):
    pytest.importorskip("llama_cpp")
    from tunesmith.models.loading import resolve
    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import LlamaCppBackend

    gguf = resolve("smollm2-135m-instruct").path
    policy = os.environ.get("OMP_WAIT_POLICY")
    backend = LlamaCppBackend(gguf, n_ctx=512, n_threads=2)
    assert os.environ.get("OMP_WAIT_POLICY") == policy  # set for llama_cpp's import only
    # The prompt runs on the threads chosen, not on every CPU (llama-cpp-python's default).
    assert backend.llm.context_params.n_threads_batch == backend.llm.context_params.n_threads == 2
    live = Live(create_app(backend, api_key=KEY))
    try:
        # The cached per-token pieces decode as llama-cpp-python's detokenize does, multi-byte text included.
        ids = backend.llm.tokenize("Grüße, 日本語 and emoji 🎉!".encode(), add_bos=True)
        for end in range(1, len(ids) + 1):
            assert backend._decode(ids[:end]) == backend.llm.detokenize(ids[:end]).decode("utf-8", errors="replace")
        client = live.client()
        assert [m.id for m in client.models.list()] == [backend.base_id]
        ask = [{"role": "user", "content": "What is the capital of France?"}]
        plain = _chat(client, backend.base_id, messages=ask, max_tokens=16)
        text = plain.choices[0].message.content
        assert text.strip()
        streamed = "".join(c.choices[0].delta.content or "" for c in _chat(
            client, backend.base_id, messages=ask, max_tokens=16, stream=True) if c.choices)
        assert streamed == text
        sampled = [_chat(client, backend.base_id, messages=ask, max_tokens=12, temperature=1.0, seed=3, n=2)
                   for _ in range(2)]
        assert [c.message.content for c in sampled[0].choices] == [c.message.content for c in sampled[1].choices]
        # The same tokens as llama-cpp-python's own greedy loop on the same prompt.
        direct = []
        with backend.model_lock:
            for t in backend.llm.generate(backend.prepare(True, ask).ids, temp=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                          repeat_penalty=1.0):
                if t in backend.eos or len(direct) == 16:
                    break
                direct.append(t)
            # and as llama-cpp-python's own chat completion (its template handling, greedy).
            own = backend.llm.create_chat_completion(ask, temperature=0, max_tokens=16)["choices"][0]
        assert text == backend.llm.detokenize(direct).decode("utf-8", errors="replace")
        assert text == own["message"]["content"]
        assert plain.usage.completion_tokens == len(direct)
        assert plain.usage.prompt_tokens == len(backend.prepare(True, ask).ids)
        r = httpx.post(live.url + "/v1/adapters", json={"name": "x", "path": "y"},
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 400 and "llama.cpp" in r.json()["error"]["message"]
    finally:
        live.stop()
        backend.close()


def test_a_plain_model_gains_and_loses_adapters(env):
    """Serving a bare model: the first adapter wraps it in peft, unloading the last unwraps it."""
    from tunesmith import inference
    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend

    backend = TransformersBackend(str(env["base"]), adapter_dirs=[str(env["run_b"].parent)])
    live = Live(create_app(backend))  # no key configured: admin calls need none
    try:
        client, base = live.client(), env["base"].name
        plain = _chat(client, base).choices[0].message.content
        assert httpx.post(live.url + "/v1/adapters", json={"name": "b", "path": "b"}).status_code == 200
        assert [m.id for m in client.models.list()] == [base, "b"]
        expected_b = inference.generate(inference.load(str(env["run_b"])), [ASK], max_new_tokens=12)[0]
        assert _chat(client, "b").choices[0].message.content.strip() == expected_b
        assert _chat(client, base).choices[0].message.content == plain  # the base row has no LoRA
        assert httpx.delete(live.url + "/v1/adapters/b").status_code == 200
        assert type(backend.model).__name__ == "LlamaForCausalLM"  # unwrapped, no LoRA layers left
        assert _chat(client, base).choices[0].message.content == plain
    finally:
        live.stop()
        backend.close()
