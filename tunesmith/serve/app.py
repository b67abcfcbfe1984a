"""`tunesmith serve`: an OpenAI-compatible HTTP API (FastAPI + uvicorn) over a generation backend.

Endpoints: GET /v1/models, POST /v1/chat/completions and /v1/completions (both streamed as SSE
with `stream: true`), admin POST /v1/adapters and DELETE /v1/adapters/{name}, GET /health, and the
chat page at /. Every failure answers in OpenAI's error shape {"error": {"message", "type",
"param", "code"}} with the matching HTTP status, so OpenAI clients raise their usual exceptions.

Limits, checked in this order: API key (401), body size (413), request validation (400 with the
field), model id (404), max_tokens (400), then admission: at most max_concurrent + max_queue
requests in flight; the next one gets 503 with Retry-After. The backend's worker batches what it
admits (backends.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunesmith.errors import TunesmithError, fail

STATIC_DIR = Path(__file__).parent / "static"
PLACEHOLDER = "<!doctype html><title>tunesmith</title><p>tunesmith serve: the chat page is not installed.</p>"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --------------------------------------------------------------------------- request bodies


class _Strict(BaseModel):
    # Unknown fields are refused, as OpenAI does: a misspelt "temprature" must not pass silently.
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Params(_Strict):
    """What both endpoints share. null means the default, as in OpenAI's API."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=8)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Accepted so that clients sending the neutral value work; anything else is refused below.
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > 4:
            raise ValueError(f"at most 4 stop sequences (got {len(stops)})")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, v):
        if v:
            raise ValueError(f"is not supported by tunesmith serve (got {v}); leave it 0")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, v):
        if v:
            raise ValueError("is not supported by tunesmith serve; leave it empty")
        return v


class ChatRequest(_Params):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v):
        if v:
            raise ValueError("is not supported by tunesmith serve")
        return v


class CompletionRequest(_Params):
    prompt: str | list[str]
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = None

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, v):
        if isinstance(v, list) and not (1 <= len(v) <= 8):
            raise ValueError(f"send 1 to 8 prompts (got {len(v)})")
        return v

    @field_validator("echo", "suffix", "logprobs")
    @classmethod
    def _unsupported(cls, v):
        if v:
            raise ValueError("is not supported by tunesmith serve")
        return v

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, v):
        if v not in (None, 1):
            raise ValueError("is not supported by tunesmith serve (only 1)")
        return v


class AdapterRequest(_Strict):
    name: str
    path: str


# --------------------------------------------------------------------------- errors


class APIError(Exception):
    """An HTTP failure in OpenAI's error shape."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self):
        from fastapi.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _api_error(e: Exception) -> APIError:
    """Map an exception from validation, a backend or the worker to its HTTP answer."""
    if isinstance(e, APIError):
        return e
    if isinstance(e, TunesmithError):
        return APIError(400, str(e))
    if isinstance(e, LookupError):
        return APIError(404, str(e).strip("'\""), code="model_not_found")
    if isinstance(e, PermissionError):
        return APIError(403, str(e), type="permission_error", code="path_not_allowed")
    if isinstance(e, FileExistsError):
        return APIError(409, str(e), code="already_exists")
    return APIError(500, f"internal error: {type(e).__name__}: {e}", type="server_error")


_STATUS_TYPES = {401: "invalid_request_error", 403: "permission_error", 404: "invalid_request_error",
                 405: "invalid_request_error", 413: "invalid_request_error"}


def _validation_error(errors: list[dict]) -> APIError:
    parts, param = [], None
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        if err.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
            continue
        field = ".".join(loc)
        param = param or field or None
        got = err.get("input")
        shown = "" if err.get("type") == "missing" or isinstance(got, (dict, list)) else f" (got {got!r:.80})"
        parts.append(f"{field}: {err.get('msg', 'invalid')}{shown}" if field else err.get("msg", "invalid"))
    return APIError(400, "; ".join(parts) or "invalid request", param=param, code="invalid_value")


class _Guard:
    """ASGI middleware: the API key and the body size limit, before any route reads the body.

    Here rather than in a FastAPI dependency because FastAPI parses the body before dependencies
    run (a malformed body would answer 400 to a caller without a key), and rather than FastAPI's
    `max_body_size` because that one answers 413 in plain text, which OpenAI clients cannot read."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes
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
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return await self._too_large(int(length)).response()(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:  # a chunked body with no Content-Length
                from starlette.exceptions import HTTPException

                raise HTTPException(413, self._too_large(seen).message)
            return message

        await self.app(scope, counted, send)

    def _too_large(self, size: int) -> APIError:
        return APIError(413, f"request body is {size} bytes, over the limit of {self.max_body_bytes}",
                        code="request_too_large")


# --------------------------------------------------------------------------- the app


class _Admission:
    """Requests in flight (queued or generating): at most max_concurrent + max_queue.

    All handlers run on the event loop, so a plain counter needs no lock."""

    def __init__(self, max_concurrent: int, max_queue: int):
        self.limit, self.active = max_concurrent + max_queue, 0

    def enter(self, retry_after: int) -> "_Ticket":
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
    """One request's rows; the worker thread's events arrive on an asyncio queue."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.rows: list = []

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

    async def events(self):
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
               static_dir: str | Path | None = None):
    """The FastAPI app serving `backend` (TransformersBackend or LlamaCppBackend)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    @asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(backend.close)

    app = FastAPI(title="tunesmith", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend
    app.state.admission = _Admission(max_concurrent, max_queue)
    app.add_middleware(_Guard, api_key=api_key, max_body_bytes=max_body_bytes)

    @app.exception_handler(APIError)
    async def _on_api_error(request, e: APIError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request, e: RequestValidationError):
        return _validation_error(list(e.errors())).response()

    @app.exception_handler(HTTPException)
    async def _on_http(request, e: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(e.status_code)
        return APIError(e.status_code, str(e.detail), type=_STATUS_TYPES.get(e.status_code, "invalid_request_error"),
                        code=code, headers=dict(e.headers or {})).response()

    @app.exception_handler(Exception)
    async def _on_crash(request, e: Exception):
        return _api_error(e).response()

    _model_routes(app, backend)
    _generation_routes(app, backend, max_tokens_limit)

    static = Path(static_dir) if static_dir else STATIC_DIR

    @app.get("/", include_in_schema=False)
    async def index():
        page = static / "index.html"
        return FileResponse(page) if page.is_file() else HTMLResponse(PLACEHOLDER)

    if static.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def _check_model(backend, model: str) -> str | None:
    """The adapter a model id names (None: the base), or 404."""
    if model == backend.base_id:
        return None
    if model not in backend.model_ids():
        raise APIError(404, f"The model '{model}' does not exist; this server has: {', '.join(backend.model_ids())}",
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
    async def load_adapter(body: AdapterRequest):
        try:
            await run_in_threadpool(backend.load_adapter, body.name, body.path)
        except Exception as e:
            err = _api_error(e)
            err.param = err.param or ("path" if err.status in (403, 404) else "name")
            raise err from None
        return card(body.name)

    @app.delete("/v1/adapters/{name}")
    async def unload_adapter(name: str):
        try:
            await run_in_threadpool(backend.unload_adapter, name)
        except Exception as e:
            raise _api_error(e) from None
        return {"id": name, "object": "model", "deleted": True}

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": backend.name, "in_flight": app.state.admission.active, **backend.stats}


def _generation_routes(app, backend, max_tokens_limit: int) -> None:
    """POST /v1/chat/completions and /v1/completions: one path, two response shapes."""
    from starlette.concurrency import run_in_threadpool

    from tunesmith.serve.backends import Row, Sampling

    admission: _Admission = app.state.admission

    async def start(req: _Params, chat: bool, prompts: list) -> tuple[_Job, list[int], _Ticket]:
        """Check, admit, tokenize, submit: the job, each prompt's token count, the ticket."""
        adapter = _check_model(backend, req.model)
        max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise APIError(400, f"max_tokens is {max_tokens}, over this server's limit of {max_tokens_limit}",
                           param="max_tokens", code="invalid_value")
        ticket = admission.enter(backend.retry_after_s())
        where = "messages" if chat else "prompt"
        try:
            prepared = [await run_in_threadpool(backend.prepare, chat, p) for p in prompts]
            too_long = [len(p.ids) for p in prepared if len(p.ids) >= backend.context_length]
            if too_long:
                raise APIError(400, f"the prompt is {too_long[0]} tokens; the model's context is "
                               f"{backend.context_length}", param=where, code="context_length_exceeded")
        except Exception as e:
            ticket.release()
            err = _api_error(e)
            err.param = err.param or where
            raise err from None
        job, n = _Job(), req.n or 1
        for p_index, prompt in enumerate(prepared):
            for j in range(n):
                sampling = Sampling(temperature=1.0 if req.temperature is None else req.temperature,
                                    top_p=1.0 if req.top_p is None else req.top_p,
                                    max_tokens=min(max_tokens or max_tokens_limit,
                                                   backend.context_length - len(prompt.ids)),
                                    stop=tuple(req.stop or ()),
                                    seed=None if req.seed is None else req.seed + j)  # n choices differ
                job.rows.append(Row(prompt, adapter, sampling, job.emitter(p_index * n + j)))
        backend.submit(job.rows)
        return job, [len(p.ids) for p in prepared], ticket

    async def respond(req: _Params, chat: bool, prompts: list):
        job, prompt_tokens, ticket = await start(req, chat, prompts)
        head = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": req.model, "system_fingerprint": None}

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
    async def chat_completions(req: ChatRequest):
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": _text(m.content)}
                    for m in req.messages]
        return await respond(req, True, [messages])

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
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
        raise _api_error(e) from None
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
            yield _sse(_api_error(e).body())
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


def serve(target: str, *, host: str = "127.0.0.1", port: int = 8000, adapters: dict[str, str] | None = None,
          adapter_dirs: list[str] | None = None, api_key: str | None = None, backend: str = "auto",
          max_concurrent: int = 8, max_queue: int = 32, max_tokens_limit: int = 2048,
          max_body_bytes: int = 1_000_000, static_dir: str | None = None, log_level: str = "info") -> None:
    """Serve a run directory, a model name/folder or a .gguf file until interrupted.

    backend: auto (llama.cpp for a .gguf when llama-cpp-python is installed, else transformers),
    transformers, llamacpp, or vllm (starts vLLM's own OpenAI server; needs a CUDA GPU)."""
    import uvicorn

    from tunesmith.serve import backends

    if backend not in ("auto", "transformers", "llamacpp", "vllm"):
        raise fail(f"unknown backend '{backend}'", "use auto, transformers, llamacpp or vllm")
    is_gguf = Path(target).suffix == ".gguf" and Path(target).is_file()
    if backend == "auto":
        import importlib.util

        backend = "llamacpp" if is_gguf and importlib.util.find_spec("llama_cpp") else "transformers"
    warning = exposure_warning(host, api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if backend == "vllm":
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
    app = create_app(engine, api_key=api_key, max_body_bytes=max_body_bytes, max_tokens_limit=max_tokens_limit,
                     max_concurrent=max_concurrent, max_queue=max_queue, static_dir=static_dir)
    print(f"tunesmith: serving {', '.join(engine.model_ids())} ({engine.name}) on http://{host}:{port}  "
          f"(OpenAI base_url http://{host}:{port}/v1)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
