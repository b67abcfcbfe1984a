"""`tunesmith serve`: an OpenAI-compatible HTTP API (FastAPI + uvicorn) over a generation backend.

Endpoints: GET /v1/models, POST /v1/chat/completions and /v1/completions (both streamed as SSE
with `stream: true`), admin POST /v1/adapters and DELETE /v1/adapters/{name}, GET /health, and the
chat page at /. Every failure answers in OpenAI's error shape {"error": {"message", "type",
"param", "code"}} with the matching HTTP status, so OpenAI clients raise their usual exceptions.

Limits, checked in this order: API key (401), body size (413), Content-Type (415), JSON and request
validation (400 with the field), model id (404), max_tokens and prompts x n against the batch size
(400), then admission: at most max_concurrent + max_queue requests in flight; the next one gets 503
with Retry-After. The backend's worker batches what it admits (backends/base.py). No client input
answers 5xx (tests/unit/serve/test_fuzz_requests.py fuzzes that).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
import uuid
from pathlib import Path

# At module level: FastAPI resolves a route's annotations in this module's globals. This module is
# imported only to serve, so `tunesmith --help` does not pay for it.
from starlette.requests import Request

from tunesmith.errors import fail
from tunesmith.serve.schema import (
    STATUS_TYPES,
    AdapterRequest,
    APIError,
    ChatRequest,
    CompletionRequest,
    Params,
    api_error,
    clip,
    read_json,
    validation_error,
)

STATIC_DIR = Path(__file__).parent / "static"
PLACEHOLDER = "<!doctype html><title>tunesmith</title><p>tunesmith serve: the chat page is not installed.</p>"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _Guard:
    """ASGI middleware: the API key and the body size limit, before any route reads the body.

    Here rather than in a FastAPI dependency because FastAPI parses the body before dependencies
    run (a malformed body would answer 400 to a caller without a key), and rather than FastAPI's
    `max_body_size` because that one answers 413 in plain text, which OpenAI clients cannot read."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int, max_file_bytes: int | None = None):
        self.app, self.max_body_bytes = app, max_body_bytes
        self.max_file_bytes = max_file_bytes or max_body_bytes  # POST /v1/files: training data, larger
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.api_key is not None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            # compare_digest: the time taken does not reveal how much of a guessed key was right.
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key):
                message = ("Incorrect API key provided" if token else
                           "Missing API key: send the header 'Authorization: Bearer <key>'")
                err = APIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                return await err.response()(scope, receive, send)
        limit = self.max_file_bytes if scope["path"] == "/v1/files" else self.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._too_large(int(length), limit).response()(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # a chunked body with no Content-Length
                from starlette.exceptions import HTTPException

                raise HTTPException(413, self._too_large(seen, limit).message)
            return message

        await self.app(scope, counted, send)

    def _too_large(self, size: int, limit: int) -> APIError:
        return APIError(413, f"request body is {size} bytes, over the limit of {limit}", code="request_too_large")


# --------------------------------------------------------------------------- the app


class _Admission:
    """Requests in flight (queued or generating): at most max_concurrent + max_queue.

    All handlers run on the event loop, so a plain counter needs no lock."""

    def __init__(self, max_concurrent: int, max_queue: int):
        self.limit, self.active = max_concurrent + max_queue, 0

    def enter(self, retry_after: int) -> _Ticket:
        if self.active >= self.limit:
            raise APIError(503, f"the server is busy: {self.active} requests are generating or queued "
                           f"(limit {self.limit}); retry in {retry_after} s", type="server_error",
                           code="overloaded", headers={"Retry-After": str(retry_after)})
        self.active += 1
        return _Ticket(self)


class _Ticket:
    def __init__(self, admission: _Admission):
        self.admission, self.open = admission, True

    def release(self) -> None:
        if self.open:
            self.open = False
            self.admission.active -= 1


class _Job:
    """One request's rows; the worker thread's events arrive on an asyncio queue. With a guard, each
    generated row's text goes through its output filter (guard.py) on the way out."""

    def __init__(self, guard=None, rid: str = ""):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.rows: list = []
        self.guard, self.rid = guard, rid

    def emitter(self, index: int):
        def emit(kind: str, value) -> None:
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, kind, value))
            except RuntimeError:  # the loop has closed (server shutting down)
                pass

        return emit

    def cancel(self) -> None:
        for r in self.rows:
            r.cancelled = True

    def submit(self, backend, refusal: str) -> None:
        """Hand the rows to the backend. A row without a prompt (the input guard blocked it) never
        runs: the refusal is its whole output, finished with content_filter."""
        runs = [r for r in self.rows if r.prompt is not None]
        for r in self.rows:
            if r.prompt is None:
                r.emit("text", refusal)
                r.emit("done", ("content_filter", 0))
        if runs:
            backend.submit(runs)

    def events(self):
        raw = self._events()
        return self.guard.screen_events(raw, self.rows, self.rid) if self.guard else raw

    async def _events(self):
        remaining = len(self.rows)
        while remaining:
            index, kind, value = await self.queue.get()
            if kind == "error":
                raise value
            if kind == "done":
                remaining -= 1
            yield index, kind, value


def _text(content) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(p.text for p in content)


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def create_app(backend, *, api_key: str | None = None, max_body_bytes: int = 1_000_000,
               max_tokens_limit: int = 2048, max_concurrent: int = 8, max_queue: int = 32,
               static_dir: str | Path | None = None, guard=None, files=None, max_file_bytes: int = 100_000_000,
               jobs=None):
    """The FastAPI app serving `backend` (TransformersBackend or LlamaCppBackend); `guard`: a
    tunesmith.serve.guard.Guard screening input and output, or None; `files`: a
    tunesmith.serve.files.FileStore behind /v1/files (the service), or None; `jobs`: the service's
    tunesmith.serve.jobs.Runner behind /v1/fine_tuning/jobs (needs `files`), or None."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    @asynccontextmanager
    async def lifespan(app):
        yield
        if jobs is not None:
            jobs.close()
        await run_in_threadpool(backend.close)

    app = FastAPI(title="tunesmith", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend
    app.state.admission = _Admission(max_concurrent, max_queue)
    app.add_middleware(_Guard, api_key=api_key, max_body_bytes=max_body_bytes,
                       max_file_bytes=max_file_bytes if files is not None else None)
    if files is not None:
        from tunesmith.serve.files import add_routes

        add_routes(app, files, max_file_bytes)
    if jobs is not None:
        from tunesmith.serve import jobs as job_routes

        job_routes.add_routes(app, jobs.store, files, jobs, backend.base_id)
        from tunesmith.serve import studio

        studio.add_routes(app, jobs.store, jobs)
        app.state.resolve_model = jobs.resolve_model

    @app.exception_handler(APIError)
    async def _on_api_error(request, e: APIError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request, e: RequestValidationError):
        return validation_error(list(e.errors())).response()

    @app.exception_handler(HTTPException)
    async def _on_http(request, e: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(e.status_code)
        return APIError(e.status_code, str(e.detail), type=STATUS_TYPES.get(e.status_code, "invalid_request_error"),
                        code=code, headers=dict(e.headers or {})).response()

    @app.exception_handler(Exception)
    async def _on_crash(request, e: Exception):
        return api_error(e).response()

    _model_routes(app, backend)
    _generation_routes(app, backend, max_tokens_limit, guard)

    static = Path(static_dir) if static_dir else STATIC_DIR

    @app.get("/", include_in_schema=False)
    async def index():
        page = static / "index.html"
        return FileResponse(page) if page.is_file() else HTMLResponse(PLACEHOLDER)

    if static.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=static), name="static")
    return app


async def _resolve(app, backend, model: str) -> None:
    """A fine-tuning job's model or checkpoint, loaded on demand (the service's runner knows them)."""
    from starlette.concurrency import run_in_threadpool

    resolve = getattr(app.state, "resolve_model", None)
    if resolve is not None and model not in backend.model_ids():
        await run_in_threadpool(resolve, model)


def _check_model(backend, model: str) -> str | None:
    """The adapter a model id names (None: the base), or 404."""
    if model == backend.base_id:
        return None
    if model not in backend.model_ids():
        shown = model if len(model) <= 100 else model[:100] + "..."
        raise APIError(404, f"The model '{shown}' does not exist; this server has: {', '.join(backend.model_ids())}",
                       param="model", code="model_not_found")
    return model


def _model_routes(app, backend) -> None:
    """GET /v1/models, the admin adapter routes, and GET /health."""
    from starlette.concurrency import run_in_threadpool

    def card(mid: str) -> dict:
        return {"id": mid, "object": "model", "created": 0,
                "owned_by": "tunesmith" if mid == backend.base_id else "tunesmith-adapter"}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [card(m) for m in backend.model_ids()]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str):
        _check_model(backend, model)
        return card(model)

    @app.post("/v1/adapters")
    async def load_adapter(request: Request):
        body = await read_json(request, AdapterRequest)
        try:
            await run_in_threadpool(backend.load_adapter, body.name, body.path)
        except Exception as e:
            err = api_error(e)
            err.param = err.param or ("name" if err.status == 409 else "path")  # the name was checked above
            raise err from None
        return card(body.name)

    @app.delete("/v1/adapters/{name}")
    async def unload_adapter(name: str):
        try:
            await run_in_threadpool(backend.unload_adapter, name)
        except Exception as e:
            raise api_error(e) from None
        return {"id": name, "object": "model", "deleted": True}

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": backend.name, "in_flight": app.state.admission.active, **backend.stats}


def _generation_routes(app, backend, max_tokens_limit: int, guard=None) -> None:
    """POST /v1/chat/completions and /v1/completions: one path, two response shapes."""
    from starlette.concurrency import run_in_threadpool

    from tunesmith.serve.backends import Row, Sampling

    admission: _Admission = app.state.admission

    async def start(req: Params, chat: bool, prompts: list, rid: str) -> tuple[_Job, list[int], _Ticket]:
        """Check, screen, admit, tokenize, submit: the job, each prompt's token count, the ticket."""
        await _resolve(app, backend, req.model)
        adapter = _check_model(backend, req.model)
        field = "max_completion_tokens" if getattr(req, "max_completion_tokens", None) else "max_tokens"
        max_tokens = getattr(req, field)
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise APIError(400, f"{field} is {clip(max_tokens)}, over this server's limit of {max_tokens_limit}",
                           param=field, code="invalid_value")
        n = req.n or 1
        # One request's rows run as one batch (backends/base.py, _Worker._take), so they are held to the
        # batch size the operator chose (--max-concurrent): 8 prompts x n=8 would be 64 sequences.
        if len(prompts) * n > backend.max_batch:
            raise APIError(400, f"this request asks for {len(prompts) * n} completions ({len(prompts)} prompts x "
                           f"n={n}); this server generates at most {backend.max_batch} at once",
                           param="n", code="invalid_value")
        # Below 1e-5 sampling is argmax in all but exact ties, while float32 logits divided by such a
        # temperature can overflow to inf (NaN probabilities: the whole batch fails): greedy instead.
        temperature = 1.0 if req.temperature is None else req.temperature
        temperature = 0.0 if temperature < 1e-5 else temperature
        # A prompt the input guard blocks is never tokenized nor run: its choices get the refusal.
        blocked = await run_in_threadpool(guard.screen_input, prompts, chat, rid) if guard else [False] * len(prompts)
        ticket = admission.enter(backend.retry_after_s())
        where = "messages" if chat else "prompt"
        try:
            prepared = [None if out else await run_in_threadpool(backend.prepare, chat, p)
                        for p, out in zip(prompts, blocked)]
            too_long = [len(p.ids) for p in prepared if p and len(p.ids) >= backend.context_length]
            if too_long:
                raise APIError(400, f"the prompt is {too_long[0]} tokens; the model's context is "
                               f"{backend.context_length}", param=where, code="context_length_exceeded")
        except Exception as e:
            ticket.release()
            err = api_error(e)
            err.param = err.param or where
            raise err from None
        job = _Job(guard, rid)
        for p_index, prompt in enumerate(prepared):
            for j in range(n):
                # seed + j: the n choices differ; a blocked prompt's rows (no prompt) never run, see _Job.submit
                sampling = Sampling(temperature=temperature,
                                    top_p=1.0 if req.top_p is None else req.top_p,
                                    max_tokens=min(max_tokens or max_tokens_limit,
                                                   backend.context_length - len(prompt.ids)),
                                    stop=tuple(req.stop or ()),
                                    seed=None if req.seed is None else req.seed + j) if prompt else None
                job.rows.append(Row(prompt, adapter, sampling, job.emitter(p_index * n + j)))
        job.submit(backend, guard.refusal if guard else "")
        return job, [len(p.ids) if p else 0 for p in prepared], ticket

    async def respond(req: Params, chat: bool, prompts: list):
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        job, prompt_tokens, ticket = await start(req, chat, prompts, rid)
        head = {"id": rid, "created": int(time.time()), "model": req.model, "system_fingerprint": None}

        def usage(counts: list[int]) -> dict:
            p, c = sum(prompt_tokens), sum(counts)
            return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

        if not req.stream:
            texts, reasons, counts = await _collect(job, ticket)
            return {**head, "object": "chat.completion" if chat else "text_completion",
                    "choices": [{"index": i, **({"message": {"role": "assistant", "content": t}} if chat else
                                                {"text": t}), "logprobs": None, "finish_reason": r}
                                for i, (t, r) in enumerate(zip(texts, reasons))],
                    "usage": usage(counts)}
        with_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(choices: list[dict], **extra) -> dict:
            return {**head, "object": "chat.completion.chunk" if chat else "text_completion", "choices": choices,
                    **({"usage": None} if with_usage else {}), **extra}

        def choice(i: int, text: str | None, reason: str | None = None, role: bool = False) -> dict:
            if chat:
                delta = {"role": "assistant", "content": ""} if role else {} if text is None else {"content": text}
                return chunk([{"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}])
            return chunk([{"index": i, "text": text or "", "logprobs": None, "finish_reason": reason}])

        return _stream(job, ticket, [choice(i, None, role=True) for i in range(len(job.rows))] if chat else [],
                       choice, (lambda counts: chunk([], usage=usage(counts))) if with_usage else None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await read_json(request, ChatRequest)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": _text(m.content)}
                    for m in req.messages]
        return await respond(req, True, [messages])

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await read_json(request, CompletionRequest)
        return await respond(req, False, [req.prompt] if isinstance(req.prompt, str) else req.prompt)


async def _collect(job: _Job, ticket: _Ticket) -> tuple[list[str], list[str | None], list[int]]:
    """Every row's whole text, finish reason and token count (a non-streamed answer)."""
    size = len(job.rows)
    texts, reasons, counts = [""] * size, [None] * size, [0] * size
    try:
        async for i, kind, value in job.events():
            if kind == "text":
                texts[i] += value
            else:
                reasons[i], counts[i] = value
    except Exception as e:
        raise api_error(e) from None
    finally:
        job.cancel()
        ticket.release()
    return texts, reasons, counts


def _stream(job: _Job, ticket: _Ticket, first: list[dict], choice, usage_chunk):
    """SSE: the `first` chunks, choice(i, text) per piece of text, choice(i, None, reason) per
    finished row, the usage chunk if asked for, then `data: [DONE]`. An error after the start
    goes out as an `error` event, which OpenAI clients raise."""
    from fastapi.responses import StreamingResponse
    from starlette.background import BackgroundTask

    async def events():
        counts = [0] * len(job.rows)
        try:
            for c in first:
                yield _sse(c)
            async for i, kind, value in job.events():
                if kind == "text":
                    yield _sse(choice(i, value))
                else:
                    counts[i] = value[1]
                    yield _sse(choice(i, None, value[0]))
            if usage_chunk is not None:
                yield _sse(usage_chunk(counts))
        except Exception as e:
            yield _sse(api_error(e).body())
        finally:
            job.cancel()  # the client may have gone: its rows stop generating
            ticket.release()
        yield "data: [DONE]\n\n"

    # The background task releases the ticket too if the client left before the first byte.
    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                             background=BackgroundTask(lambda: (job.cancel(), ticket.release())))


# --------------------------------------------------------------------------- serve


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The loud start-up warning for a server reachable beyond this machine without a key."""
    if api_key or host in LOOPBACK or host.startswith("127."):
        return None
    bar = "!" * 78
    return (f"{bar}\n!! WARNING: serving on {host} WITHOUT an API key: anyone who can reach this machine can\n"
            f"!! use the model and load or unload adapters. Set --api-key or $TUNESMITH_API_KEY,\n"
            f"!! or serve on 127.0.0.1.\n{bar}")


def _guard_log(level: str) -> None:
    """The guard's decisions into the server's log, formatted as uvicorn's own lines."""
    import logging

    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("tunesmith.guard")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    named = logging.getLevelName(level.upper())
    logger.setLevel(named if isinstance(named, int) else logging.INFO)  # uvicorn's "trace" is not a logging level


def serve(target: str, *, host: str = "127.0.0.1", port: int = 8000, adapters: dict[str, str] | None = None,
          adapter_dirs: list[str] | None = None, api_key: str | None = None, backend: str = "auto",
          max_concurrent: int = 8, max_queue: int = 32, max_tokens_limit: int = 2048,
          max_body_bytes: int = 1_000_000, static_dir: str | None = None, log_level: str = "info",
          guard: str | list[str] | None = None, guard_config: str | None = None, jobs: bool = False,
          jobs_dir: str = "tunesmith-service", max_file_bytes: int = 100_000_000, max_running_jobs: int = 1) -> None:
    """Serve a run directory, a model name/folder or a .gguf file until interrupted.

    backend: auto (llama.cpp for a .gguf when llama-cpp-python is installed, else transformers),
    transformers, llamacpp, or vllm (starts vLLM's own OpenAI server; needs a CUDA GPU).
    guard: the guarded stages ("input,output", see guard.py); guard_config: their settings (YAML).
    jobs: also serve the fine-tuning service's /v1/files (files kept in jobs_dir)."""
    import uvicorn

    from tunesmith.serve import backends
    from tunesmith.serve.guard import load_guard

    if backend not in ("auto", "transformers", "llamacpp", "vllm"):
        raise fail(f"unknown backend '{backend}'", "use auto, transformers, llamacpp or vllm")
    screen = load_guard(guard_config, guard)  # before the model loads: a config error answers at once
    is_gguf = Path(target).suffix == ".gguf" and Path(target).is_file()
    if backend == "auto":
        import importlib.util

        backend = "llamacpp" if is_gguf and importlib.util.find_spec("llama_cpp") else "transformers"
    warning = exposure_warning(host, api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if backend == "vllm":
        if screen:
            raise fail("--guard is not available with --backend vllm (vLLM answers with its own server)",
                       "use --backend transformers, or put a guarding proxy in front of vLLM")
        return backends.run_vllm(target, host=host, port=port, adapters=adapters, api_key=api_key,
                                 max_concurrent=max_concurrent)
    if backend == "llamacpp":
        if not is_gguf:
            raise fail(f"--backend llamacpp serves a .gguf file, and {target} is not one",
                       "export one with `tunesmith export RUN --format gguf`, or use --backend transformers")
        if adapters or adapter_dirs:
            raise fail("the llama.cpp backend cannot serve LoRA adapters per request",
                       "export each adapter merged to its own GGUF, or use --backend transformers")
        engine = backends.LlamaCppBackend(target, max_batch=max_concurrent)
    else:
        engine = backends.TransformersBackend(target, adapters=adapters, adapter_dirs=adapter_dirs,
                                              max_batch=max_concurrent)
    store = runner = None
    if jobs:
        from tunesmith import runs
        from tunesmith.serve.files import FileStore
        from tunesmith.serve.job_store import JobStore
        from tunesmith.serve.jobs import Runner

        store = FileStore(jobs_dir)
        base_spec = target
        if runs.is_run_dir(Path(target)):  # a run is served on its base model: jobs fine-tune that
            from tunesmith.config import load_config

            base_spec = load_config(Path(target) / runs.CONFIG_FILE).model.name
        if max_running_jobs < 1:
            raise fail(f"--max-running-jobs {max_running_jobs} runs no job", "use 1 or more")
        runner = Runner(JobStore(jobs_dir), store, engine, Path(jobs_dir), base_spec, max_running=max_running_jobs)
        runner.start()  # picks up the jobs a previous server left running or queued
    app = create_app(engine, api_key=api_key, max_body_bytes=max_body_bytes, max_tokens_limit=max_tokens_limit,
                     max_concurrent=max_concurrent, max_queue=max_queue, static_dir=static_dir, guard=screen,
                     files=store, max_file_bytes=max_file_bytes, jobs=runner)
    if screen:
        _guard_log(log_level)
    guarded = f", guarded: {', '.join(screen.cfg.stages)}" if screen else ""
    print(f"tunesmith: serving {', '.join(engine.model_ids())} ({engine.name}) on http://{host}:{port}  "
          f"(OpenAI base_url http://{host}:{port}/v1){guarded}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
