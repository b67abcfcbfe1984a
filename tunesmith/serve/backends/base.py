"""What every backend shares: the request types (Sampling, Prompt, Row), streaming a row's output
(_Progress: stop strings, max_tokens, half characters held back), where adapters may be loaded
from, and the queue with the one worker thread that owns the model (_Worker)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import fail

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9._:-]+$")  # ":" for fine-tuning jobs' ft:BASE:SUFFIX:ID


@dataclass
class Sampling:
    """How one sequence is decoded; temperature 0 is greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Prompt:
    """A prompt tokenized by the backend that will run it."""

    ids: list[int]
    chat: bool


class Row:
    """One sequence to generate (one choice of one request).

    The worker thread reports through `emit(kind, value)`: ("text", str) for each new piece of
    text, then ("done", (finish_reason, completion_tokens)), or ("error", exception). The request
    side sets `cancelled` when its client has gone, and the worker drops the row."""

    def __init__(self, prompt: Prompt, adapter: str | None, sampling: Sampling,
                 emit: Callable[[str, object], None]):
        self.prompt, self.adapter, self.sampling, self.emit = prompt, adapter, sampling, emit
        self.cancelled = False


class _Progress:
    """One row's output: incremental decoding, stop strings, max_tokens, delivery.

    Text goes out as soon as it can no longer change: a trailing U+FFFD (half a UTF-8 character
    cut between tokens) and any tail that could still grow into a stop string are held back."""

    def __init__(self, row: Row, decode: Callable[[list[int]], str], eos: set[int]):
        self.row, self.decode, self.eos = row, decode, eos
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already emitted
        self.done = False

    def push(self, token: int) -> bool:
        """Take the next token; True once the row is finished."""
        if self.done:
            return True
        if self.row.cancelled:
            self.done = True
            return True
        if token in self.eos:
            return self._finish(self.decode(self.ids), "stop")
        self.ids.append(token)
        text = self.decode(self.ids)
        stops = self.row.sampling.stop
        hits = [i for i in (text.find(s, self.sent) for s in stops) if i >= 0]
        if hits:
            return self._finish(text[:min(hits)], "stop")
        if len(self.ids) >= self.row.sampling.max_tokens:
            return self._finish(text, "length")
        end = len(text.rstrip("\ufffd"))
        hold = 0  # the longest tail that is the start of some stop string waits
        for s in stops:
            for k in range(min(len(s) - 1, end - self.sent), hold, -1):
                if text.endswith(s[:k], 0, end):
                    hold = k
                    break
        safe = end - hold
        if safe > self.sent:
            self.row.emit("text", text[self.sent:safe])
            self.sent = safe
        return False

    def _finish(self, text: str, reason: str) -> bool:
        if len(text) > self.sent:
            self.row.emit("text", text[self.sent:])
        self.row.emit("done", (reason, len(self.ids)))
        self.done = True
        return True


# --------------------------------------------------------------------------- adapter paths


def check_adapter_name(name: str) -> None:
    if not isinstance(name, str) or not ADAPTER_NAME.match(name) or name in (".", ".."):
        raise fail(f"adapter name {name!r} is not allowed", "use letters, digits, '.', '_', ':' and '-' only")


def adapter_folder(path: str | Path) -> Path:
    """The peft adapter folder for `path`: the folder itself, or a run directory's adapter/."""
    p = Path(path)
    if (p / "adapter_config.json").is_file():
        return p
    if (p / "adapter" / "adapter_config.json").is_file():
        return p / "adapter"
    raise fail(f"{path} is not a LoRA adapter (no adapter_config.json in it or in its adapter/)",
               "point at a run directory or at a folder written by peft's save_pretrained")


def resolve_adapter_path(path: str, roots: list[Path], trusted: set[Path]) -> Path:
    """Where an adapter named by an HTTP client may be loaded from.

    A relative path is looked up under each configured adapter dir. After realpath (so `..` and
    symlinks cannot escape) the folder must lie inside one of `roots` or be one of the `trusted`
    adapters given on the command line; anything else is refused before a single file is read."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise fail(f"adapter path {path!r} is not a path", "send the adapter folder's path")
    def allowed(p: Path) -> bool:
        return p in trusted or any(p == r or r in p.parents for r in roots)

    def refuse() -> PermissionError:
        where = ", ".join(map(str, roots)) or "none configured (start the server with --adapter-dir DIR)"
        return PermissionError(f"adapter path {path!r} is outside the adapter directories ({where})")

    raw = Path(path)
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    inside = [real for real in (Path(os.path.realpath(c)) for c in candidates) if allowed(real)]
    if not inside:
        raise refuse()
    for real in inside:
        try:
            exists = real.exists()
        except OSError as e:  # a name over NAME_MAX, a loop of links...: the client's path, a 400
            if isinstance(e, PermissionError):
                raise
            raise fail(f"adapter path {path!r} cannot be looked up ({e.strerror})",
                       "send the path of an adapter folder in an adapter directory") from None
        if exists:
            folder = Path(os.path.realpath(adapter_folder(real)))  # a run's adapter/ may be a link
            if not allowed(folder):
                raise refuse()
            return folder
    raise fail(f"adapter path {path!r} does not exist", "send the path of an adapter folder in an adapter directory")


# --------------------------------------------------------------------------- worker


class _Worker:
    """The queue and the one thread that owns the model; subclasses run the rows.

    The thread works in steps. A backend that decodes rows together (continuous batching) keeps rows
    between steps (`_active` counts them) and admits queued requests at every step while it has room
    (`max_batch` rows in all); a backend without that runs each admitted batch to its end in one step."""

    def __init__(self, max_batch: int = 8, batch_window_s: float = 0.01):
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s  # when idle, after the first request, wait this long for company
        # batches: admissions (requests taken from the queue together); last_batch: rows in the last
        # one; max_batch: the most rows ever decoding at once; steps: decode steps.
        self.stats = {"batches": 0, "rows": 0, "max_batch": 0, "last_batch": 0, "busy_s": 0.0, "steps": 0}
        self._pending: deque[list[Row]] = deque()  # whole requests: their n rows are admitted together
        self._cond = threading.Condition()
        # Held while the model takes a step or changes (adapter load/unload); tests hold it to stall
        # the worker deterministically.
        self.model_lock = threading.Lock()
        self._closing = False
        # Started by the subclass once its model is ready.
        self._thread = threading.Thread(target=self._loop, name="tunesmith-serve-worker", daemon=True)

    def submit(self, rows: list[Row]) -> None:
        with self._cond:
            self._pending.append(rows)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def retry_after_s(self) -> int:
        """A guess for Retry-After: the mean busy time per admitted batch, at least 1 s."""
        mean = self.stats["busy_s"] / max(1, self.stats["batches"])
        return max(1, min(60, round(mean + 0.5)))

    def _take(self, room: int) -> list[Row]:
        """Whole requests from the queue, up to `room` rows; when nothing is running, always at
        least the first request (the app holds one request to max_batch rows)."""
        rows: list[Row] = []
        with self._cond:
            while self._pending and ((not rows and not self._active()) or len(rows) + len(self._pending[0]) <= room):
                rows += self._pending.popleft()
        return rows

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._active() and not self._closing:
                    self._cond.wait()
                if self._closing:
                    self._abort(RuntimeError("the server is shutting down"))
                    return
                idle = not self._active()
            if idle and self.batch_window_s:
                time.sleep(self.batch_window_s)
            with self.model_lock:
                rows = [r for r in self._take(self._room()) if not r.cancelled]
                if rows:  # counted before the rows run: their answers may reach a reader first
                    self.stats["batches"] += 1
                    self.stats["rows"] += len(rows)
                    self.stats["last_batch"] = len(rows)
                elif not self._active():
                    continue
                t0 = time.perf_counter()
                try:
                    self._step(rows)
                except Exception as e:  # a failed step fails its requests, never the server
                    for r in rows:
                        r.emit("error", e)
                    self._abort(e)
                self.stats["steps"] += 1
                self.stats["max_batch"] = max(self.stats["max_batch"], self._active(), len(rows))
                self.stats["busy_s"] += time.perf_counter() - t0

    def _active(self) -> int:
        """Rows still decoding between steps (continuous batching); 0 for one-shot backends."""
        return 0

    def _room(self) -> int:
        """How many more rows may be admitted at this step."""
        return self.max_batch - self._active()

    def _abort(self, error: Exception) -> None:
        """Fail and drop every row still decoding between steps."""

    def _step(self, rows: list[Row]) -> None:
        """Admit `rows` and take one step; by default, run them to their end."""
        self._run(rows)

    def _run(self, rows: list[Row]) -> None:
        raise NotImplementedError


def model_id(name: str) -> str:
    """The id a base model is served under: an embedded or hub name as is, a path's last part."""
    p = Path(name)
    if p.suffix == ".gguf":
        return p.stem
    return p.name if (p.exists() or name.startswith((".", "/", "~"))) else name
