"""Request bodies of `tunesmith serve` and how they are read: strict JSON, strict types, and every
problem as a 4xx in OpenAI's error shape (app.py turns APIError into the response)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request

from tunesmith.errors import TunesmithError

# --------------------------------------------------------------------------- request bodies


class _Strict(BaseModel):
    # Unknown fields are refused, as OpenAI does: a misspelt "temprature" must not pass silently.
    # strict: JSON types as OpenAI documents them, no coercion ("0.7" is not a temperature, true is
    # not a max_tokens, 5.0 is not an integer); an integer still passes for a float.
    # allow_inf_nan=False: NaN, Infinity and 1e400 (which parses as inf) are refused, not compared.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    # Unknown options are ignored (OpenAI adds some from time to time); known ones are typed strictly.
    model_config = ConfigDict(strict=True)

    include_usage: bool = False


class Params(_Strict):
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


class ChatRequest(Params):
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


class CompletionRequest(Params):
    prompt: str | list[str]
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompts(cls, v):
        # Checked before the str | list[str] union, whose own errors name each branch it tried.
        if isinstance(v, list) and v and all(isinstance(t, (int, list)) for t in v):
            raise ValueError("token-id prompts (lists of integers) are not supported; send the text")
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
    name: str = Field(max_length=128)
    path: str = Field(min_length=1, max_length=4096)  # PATH_MAX on Linux

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        from tunesmith.serve.backends import check_adapter_name

        try:
            check_adapter_name(v)  # here too, so that a bad name is reported as `name`, not `path`
        except TunesmithError as e:
            raise ValueError(str(e)) from None
        return v


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


def api_error(e: Exception) -> APIError:
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


STATUS_TYPES = {401: "invalid_request_error", 403: "permission_error", 404: "invalid_request_error",
                 405: "invalid_request_error", 413: "invalid_request_error"}


# What jiter (pydantic's JSON parser) says, and what the client should do about it.
_JSON_HINTS = {"surrogate": "a \\uD800-\\uDFFF escape must be one half of a UTF-16 surrogate pair",
               "hex escape": "a \\uD800-\\uDFFF escape must be one half of a UTF-16 surrogate pair",
               "unicode code point": "the body must be UTF-8", "recursion limit": "it is nested too deeply",
               "number out of range": "a number is too large"}
_MESSAGES = {"extra_forbidden": "is not a field of this request, or not one tunesmith serve supports",
             "model_type": "must be a JSON object", "dict_type": "must be a JSON object"}


def clip(value) -> str:
    """A client's value for an error message, short; never fails (an int's repr can)."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's 4,300-digit limit for int -> str
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 80 else text[:77] + "..."


def validation_error(errors: list[dict]) -> APIError:
    """One 400 for everything pydantic (or FastAPI) refused: each field as a dotted path, its value."""
    for err in errors:
        if err.get("type") == "json_invalid":
            why = str(err.get("ctx", {}).get("error", "decode error"))
            hint = next((h for k, h in _JSON_HINTS.items() if k in why), "")
            return APIError(400, f"the request body is not valid JSON: {why}" + (f" ({hint})" if hint else ""),
                            code="invalid_json")
    # A union (str | list[str]) fails once per branch, and pydantic names the branch in the path
    # ("content.list[TextPart].0.type"): the branch names go, and an error on a field is dropped
    # when another error reaches inside it (the branch the client meant).
    fields: dict[tuple, tuple[dict, str]] = {}  # path -> (its messages, the value shown)
    for err in errors:
        loc = tuple(str(x)[:64] for i, x in enumerate(err.get("loc", ()))
                    if x != "body" and not (i and isinstance(x, str) and ("[" in x or x == "str")))
        got = err.get("input")
        shown = "" if err.get("type") == "missing" or isinstance(got, (dict, list)) else f" (got {clip(got)})"
        msg = _MESSAGES.get(err.get("type")) or str(err.get("msg", "invalid")).removeprefix("Value error, ")
        fields.setdefault(loc, ({}, shown))[0][msg] = None
    deepest = [loc for loc in fields if not any(o[:len(loc)] == loc and o != loc for o in fields)]
    parts = [f"{'.'.join(loc) + ':' if loc else 'the request body'} {' or '.join(fields[loc][0])}{fields[loc][1]}"
             for loc in deepest[:5]]
    if len(deepest) > 5:
        parts.append(f"and {len(deepest) - 5} more")
    param = (".".join(deepest[0]) or None) if deepest else None
    return APIError(400, "; ".join(parts) or "invalid request", param=param, code="invalid_value")


async def read_json(request: Request, model: type[BaseModel]):
    """The request's JSON body as `model`, parsed and validated in one pass by pydantic's own JSON
    parser (jiter) instead of FastAPI's json.loads, which lets through what no client means and
    what then fails far downstream as a 500: lone surrogate escapes ("\\ud83d", text that no
    tokenizer or response can encode), NaN and Infinity. jiter refuses those, invalid UTF-8,
    nesting past 200 levels and integers past 4,300 digits, with the line and column. Duplicate
    keys: the last one counts, as with json.loads (RFC 8259 leaves it to the receiver)."""
    kind = request.headers.get("content-type")
    media = (kind or "application/json").split(";")[0].strip().lower()
    # Only JSON: a browser page elsewhere can POST text/plain or a form here without a CORS
    # preflight, so accepting those would let any web page call a key-less local server.
    if media != "application/json" and not media.endswith("+json"):
        raise APIError(415, f"Content-Type must be application/json (got {clip(kind)})",
                       code="unsupported_media_type")
    raw = (await request.body()).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as json.loads allows
    if not raw.strip():
        raise APIError(400, "the request body is empty; send a JSON object", code="invalid_json")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        raise validation_error(e.errors(include_url=False)) from None
