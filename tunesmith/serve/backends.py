"""Generation backends for `tunesmith serve`.

- TransformersBackend (default): one base model and any number of peft LoRA adapters. A single
  worker thread owns the model; it takes up to `max_batch` queued sequences at once and runs them
  in ONE `generate` call, each row with its own adapter (peft's mixed-adapter batches:
  `generate(adapter_names=[...])`, "__base__" for no adapter) and its own sampling parameters.
- LlamaCppBackend: a GGUF through llama-cpp-python on CPU, one sequence at a time (llama-cpp-python's
  `Llama` holds a single sequence); no runtime adapters.
- vLLM: not an in-process backend; `vllm_command`/`run_vllm` start vLLM's own OpenAI server with
  its LoRA support where a CUDA GPU is present, and refuse clearly elsewhere.

Per-request sampling inside a shared batch: rows with different temperature/top_p/seed/max_tokens
share one `generate` call instead of being split into separate batches, because chat clients all
send different settings and splitting would serialize them again. `generate` runs greedy
(argmax); a per-row logits processor (_RowSampler) draws each sampling row's token itself, with
transformers' own temperature and top-p warpers and a torch.Generator per row, and leaves only that
token standing, which argmax then picks. A row's seed therefore reproduces its text whatever else
shares the batch. Per-row max_tokens and stop strings are a stopping criterion (_RowTracker) that
also decodes each row's new token and hands the text to the request as it is produced (streaming).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import fail

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


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
        raise fail(f"adapter name {name!r} is not allowed", "use letters, digits, '.', '_' and '-' only")


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
    """The queue and the one thread that owns the model; subclasses run batches of rows."""

    def __init__(self, max_batch: int = 8, batch_window_s: float = 0.01):
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s  # after the first request, wait this long for company
        self.stats = {"batches": 0, "rows": 0, "max_batch": 0, "last_batch": 0, "busy_s": 0.0}
        self._pending: deque[list[Row]] = deque()  # whole requests: their n rows run together
        self._cond = threading.Condition()
        # Held while the model generates or changes (adapter load/unload); tests hold it to stall
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
        """A guess for Retry-After: the mean time of a batch, at least 1 s."""
        mean = self.stats["busy_s"] / max(1, self.stats["batches"])
        return max(1, min(60, round(mean + 0.5)))

    def _take(self) -> list[Row]:
        """Whole requests from the queue, up to max_batch rows (always at least the first)."""
        rows: list[Row] = []
        with self._cond:
            while self._pending and (not rows or len(rows) + len(self._pending[0]) <= self.max_batch):
                rows += self._pending.popleft()
        return rows

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
            if self.batch_window_s:
                time.sleep(self.batch_window_s)
            with self.model_lock:
                rows = [r for r in self._take() if not r.cancelled]
                if not rows:
                    continue
                # Counted before the rows run: their answers may reach a reader before _run returns.
                self.stats["batches"] += 1
                self.stats["rows"] += len(rows)
                self.stats["last_batch"] = len(rows)
                self.stats["max_batch"] = max(self.stats["max_batch"], len(rows))
                t0 = time.perf_counter()
                try:
                    self._run(rows)
                except Exception as e:  # a failed batch fails its requests, never the server
                    for r in rows:
                        r.emit("error", e)
                self.stats["busy_s"] += time.perf_counter() - t0

    def _run(self, rows: list[Row]) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- transformers


class TransformersBackend(_Worker):
    """A transformers causal LM with peft LoRA adapters chosen per row."""

    name = "transformers"

    def __init__(self, target: str, *, adapters: dict[str, str] | None = None,
                 adapter_dirs: list[str] | None = None, max_batch: int = 8, batch_window_s: float = 0.01):
        """`target`: a run directory (its base model + its adapter, served under the run's name) or
        a model name, folder or GGUF; `adapters`: more LoRA adapters, {model id: folder or run}."""
        from tunesmith import inference, runs

        super().__init__(max_batch, batch_window_s)
        loaded = inference.load(target)  # every check on runs and models lives there
        path = Path(target)
        run_adapter = path / "adapter" if runs.is_run_dir(path) and not (path / "model").is_dir() else None
        if run_adapter is not None:
            from tunesmith.config import load_config

            base_name = load_config(path / runs.CONFIG_FILE).model.name
        else:
            base_name = path.resolve().name if runs.is_run_dir(path) else target
        model, tokenizer = loaded.model, loaded.tokenizer
        self.model, self.tokenizer, self.base_id = model.eval(), tokenizer, model_id(base_name)
        self.adapter_dirs = [Path(os.path.realpath(d)) for d in adapter_dirs or []]
        self._trusted: set[Path] = set()  # adapters named by the operator may be reloaded over HTTP
        self._adapters: dict[str, str] = {}  # public model id -> peft adapter name
        self._paths: dict[str, Path] = {}
        self._serial = 0
        self._tok_lock = threading.Lock()  # HF fast tokenizers are not safe to share across threads
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 4096
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        self.eos = {tokenizer.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])} - {None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        adapters = dict(adapters or {})
        if run_adapter is not None:  # inference.load put the run's adapter in as peft's "default"
            real = Path(os.path.realpath(run_adapter))
            # Named on the command line too: one folder, one model id (the operator's name).
            named = [n for n, p in adapters.items() if Path(os.path.realpath(adapter_folder(p))) == real]
            name = named[0] if named else path.resolve().name
            check_adapter_name(name)
            self._register(name, "default", real)
            adapters.pop(name, None)
        for name, p in adapters.items():
            self.load_adapter(name, p, trusted=True)
        self._thread.start()

    # ----------------------------------------------------------------- models and adapters

    def model_ids(self) -> list[str]:
        return [self.base_id, *self._adapters]

    def _register(self, name: str, internal: str, path: Path) -> None:
        if name == self.base_id:
            raise FileExistsError(f"adapter name '{name}' is the base model's id; name the adapter otherwise")
        real = Path(os.path.realpath(path))
        self._adapters[name], self._paths[name] = internal, real
        self._trusted.add(real)

    def load_adapter(self, name: str, path: str, *, trusted: bool = False) -> Path:
        """Load a peft LoRA adapter as model id `name`. Untrusted paths (from HTTP) must lie
        inside the adapter dirs; `trusted` is for the operator's own command line."""
        check_adapter_name(name)
        if name == self.base_id or name in self._adapters:
            raise FileExistsError(f"model id '{name}' is already in use")
        folder = adapter_folder(path) if trusted else resolve_adapter_path(path, self.adapter_dirs, self._trusted)
        from peft import PeftModel

        with self.model_lock:
            self._serial += 1
            # peft keeps adapters in ModuleDicts, whose keys may not contain '.': the public name
            # is mapped to an internal one.
            internal = f"a{self._serial}"
            try:
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(str(folder), adapter_name=internal)
                else:
                    self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=internal)
            except (RuntimeError, ValueError, KeyError, OSError) as e:
                raise fail(f"adapter {folder} does not fit the base model {self.base_id}: {e}",
                           "load an adapter trained on this base model") from None
            self.model.eval()
            self._register(name, internal, folder)
        return folder

    def unload_adapter(self, name: str) -> None:
        if name == self.base_id:
            raise fail(f"'{name}' is the base model, not an adapter", "DELETE an adapter's model id")
        if name not in self._adapters:
            raise LookupError(f"no adapter named '{name}' is loaded")
        import warnings

        with self.model_lock:
            internal = self._adapters.pop(name)
            self._paths.pop(name)
            if not self._adapters:
                # peft cannot run with no adapter left (its active adapter would be gone): take
                # the LoRA layers out and keep the bare base; the next load wraps it again.
                self.model = self.model.unload().eval()
                return
            with warnings.catch_warnings():  # "adapter X was active, now Y": no adapter is ever
                warnings.simplefilter("ignore")  # active here, rows name theirs (adapter_names)
                self.model.delete_adapter(internal)

    # ----------------------------------------------------------------- prompts

    def prepare(self, chat: bool, content: list[dict] | str) -> Prompt:
        """Token ids of a conversation (through the chat template) or of raw text."""
        with self._tok_lock:
            if chat:
                if not self.tokenizer.chat_template:
                    raise fail(f"the model {self.base_id} has no chat template (base models often ship none)",
                               "use /v1/completions, or serve a run, whose adapter folder carries a template")
                try:
                    text = self.tokenizer.apply_chat_template(content, tokenize=False, add_generation_prompt=True)
                except Exception as e:  # the template's own raise_exception(), e.g. roles out of order
                    raise fail(f"the chat template refused these messages: {e}",
                               "check the roles and their order") from None
            else:
                text = content
            # The chat template writes its own special tokens; a raw prompt gets the tokenizer's.
            ids = self.tokenizer(text, add_special_tokens=not chat)["input_ids"]
        if not ids:
            raise fail("the prompt is empty", "send at least one token of text")
        return Prompt(ids=list(ids), chat=chat)

    def _decode(self, ids: list[int]) -> str:
        with self._tok_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ----------------------------------------------------------------- generation

    def _run(self, rows: list[Row]) -> None:
        import torch
        from peft import PeftModel
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        from tunesmith.hardware import recheck_threads

        recheck_threads()  # here, on the thread that runs the model: OpenMP keeps thread counts per thread
        live = []
        for r in rows:  # an adapter may have been unloaded while the request waited
            if r.adapter is not None and r.adapter not in self._adapters:
                r.emit("error", LookupError(f"the model '{r.adapter}' was unloaded"))
            else:
                live.append(r)
        if not live:
            return
        width = max(len(r.prompt.ids) for r in live)
        # Left padding: every row continues from the same right edge (decoder-only).
        input_ids = torch.tensor([[self.pad_id] * (width - len(r.prompt.ids)) + r.prompt.ids for r in live])
        mask = torch.tensor([[0] * (width - len(r.prompt.ids)) + [1] * len(r.prompt.ids) for r in live])
        tracker = _RowTracker([_Progress(r, self._decode, self.eos) for r in live])
        # A fresh GenerationConfig: the checkpoint's own sampling defaults (top_k=50, a repetition
        # penalty...) would silently change what the API's parameters mean.
        gen = GenerationConfig(max_new_tokens=max(r.sampling.max_tokens for r in live), do_sample=False,
                               pad_token_id=self.pad_id, eos_token_id=sorted(self.eos))
        extra = {}
        if isinstance(self.model, PeftModel):
            extra["adapter_names"] = [self._adapters[r.adapter] if r.adapter else BASE for r in live]
        with torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen,
                                logits_processor=LogitsProcessorList([_RowSampler([r.sampling for r in live])]),
                                stopping_criteria=StoppingCriteriaList([tracker]), **extra)
        for p in tracker.rows:  # generate stopped at max_new_tokens before a row said it was done
            if not p.done:
                p._finish(p.decode(p.ids), "length")


class _RowSampler:
    """Per-row sampling inside one greedy `generate` (see the module docstring).

    Greedy rows are left alone. A sampling row gets transformers' temperature and top-p warpers,
    draws its token with its own torch.Generator, and all other tokens are set to -inf."""

    def __init__(self, samplings: list[Sampling]):
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.rows = []
        for s in samplings:
            if s.temperature <= 0:
                self.rows.append(None)
                continue
            g = torch.Generator()
            if s.seed is None:
                g.seed()  # non-deterministic
            else:
                g.manual_seed(s.seed % 2 ** 63)  # any JSON integer is a valid seed
            warpers = [TemperatureLogitsWarper(s.temperature)]
            if s.top_p < 1.0:
                warpers.append(TopPLogitsWarper(s.top_p))
            self.rows.append((warpers, g))

    def __call__(self, input_ids, scores):
        import torch

        if all(r is None for r in self.rows):
            return scores
        scores = scores.clone()
        for i, r in enumerate(self.rows):
            if r is None:
                continue
            warpers, g = r
            row = scores[i: i + 1]
            for w in warpers:
                row = w(input_ids[i: i + 1], row)
            token = torch.multinomial(torch.softmax(row[0], dim=-1), 1, generator=g)
            scores[i].fill_(-float("inf"))
            scores[i, token] = 0.0
        return scores


class _RowTracker:
    """A stopping criterion that feeds each row's new token to its _Progress (which streams the
    text out) and reports which rows are finished (EOS, stop string, their own max_tokens)."""

    def __init__(self, rows: list[_Progress]):
        self.rows = rows

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        last = input_ids[:, -1].tolist()
        return torch.tensor([p.push(t) for p, t in zip(self.rows, last)], dtype=torch.bool)


# --------------------------------------------------------------------------- llama.cpp


class LlamaCppBackend(_Worker):
    """A GGUF through llama-cpp-python (CPU), one sequence at a time; no runtime adapters.

    Token by token through `Llama.generate`, so stop strings, max_tokens, streaming and token
    counts follow the same rules as the transformers backend; the chat template is the GGUF's own
    (`tokenizer.chat_template`), rendered with llama-cpp-python's Jinja2ChatFormatter."""

    name = "llamacpp"

    def __init__(self, gguf_path: str, *, base_id: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, max_batch: int = 8):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise fail("the llama.cpp backend needs llama-cpp-python, which is not installed",
                       "pip install llama-cpp-python==0.3.36 (builds in about 3 minutes), or use "
                       "--backend transformers") from None
        from tunesmith.hardware import pick_threads

        # llama.cpp's threads also meet at a barrier per op: one per free core, as for torch.
        self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=n_threads or pick_threads()["threads"],
                         verbose=False)
        self.base_id = base_id or model_id(str(gguf_path))
        self.context_length = self.llm.n_ctx()
        template = self.llm.metadata.get("tokenizer.chat_template")
        text = lambda t: self.llm._model.token_get_text(t) if t >= 0 else ""  # noqa: E731
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=text(self.llm.token_eos()),
                                              bos_token=text(self.llm.token_bos())) if template else None
        # Every end-of-generation token the vocabulary marks (e.g. <|im_end|> as well as EOS).
        vocab = self.llm._model.vocab
        from llama_cpp import llama_cpp as C

        self.eos = {t for t in range(self.llm.n_vocab()) if C.llama_vocab_is_eog(vocab, t)} or {self.llm.token_eos()}
        self.adapter_dirs: list[Path] = []
        super().__init__(max_batch, batch_window_s=0.0)
        self._thread.start()

    def model_ids(self) -> list[str]:
        return [self.base_id]

    def load_adapter(self, name: str, path: str, *, trusted: bool = False) -> Path:
        raise fail("the llama.cpp backend serves the GGUF as it is and cannot load adapters at run time",
                   "export each adapter merged (`tunesmith export RUN --format gguf`) and serve that GGUF, "
                   "or serve with --backend transformers")

    def unload_adapter(self, name: str) -> None:
        if name == self.base_id:
            raise fail(f"'{name}' is the base model, not an adapter", "DELETE an adapter's model id")
        raise LookupError(f"no adapter named '{name}' is loaded")

    def prepare(self, chat: bool, content: list[dict] | str) -> Prompt:
        if chat:
            if self._formatter is None:
                raise fail("this GGUF carries no chat template (tokenizer.chat_template)",
                           "use /v1/completions, or export the GGUF with its tokenizer's chat template")
            text = self._formatter(messages=content).prompt
        else:
            text = content
        # add_bos adds BOS only where the GGUF asks for it; a template that writes BOS itself
        # would then give two, and one goes (llama-cpp-python warns about the same).
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        bos = self.llm.token_bos()
        if len(ids) > 1 and ids[0] == ids[1] == bos:
            ids = ids[1:]
        if not ids:
            raise fail("the prompt is empty", "send at least one token of text")
        return Prompt(ids=list(ids), chat=chat)

    def _decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def _run(self, rows: list[Row]) -> None:
        import random

        for r in rows:
            if r.cancelled:
                continue
            if r.adapter is not None:
                r.emit("error", LookupError(f"the model '{r.adapter}' does not exist"))
                continue
            s = r.sampling
            self.llm.set_seed(s.seed % 2 ** 32 if s.seed is not None else random.randrange(2 ** 32))
            progress = _Progress(r, self._decode, self.eos)
            # top_k=0 and min_p=0 switch those samplers off: temperature and top_p alone, as in
            # the OpenAI API (llama-cpp-python's defaults add top_k=40 and min_p=0.05).
            for token in self.llm.generate(r.prompt.ids, temp=s.temperature, top_p=s.top_p, top_k=0,
                                           min_p=0.0, typical_p=1.0, repeat_penalty=1.0, reset=True):
                if progress.push(token):
                    break
            if not progress.done:
                progress._finish(self._decode(progress.ids), "length")


# --------------------------------------------------------------------------- vLLM


def vllm_command(base: str, adapters: dict[str, str], *, host: str, port: int, api_key: str | None,
                 max_concurrent: int, served_name: str) -> list[str]:
    """`vllm serve` with tunesmith's adapters as LoRA modules (a documented path, not run here)."""
    import json

    cmd = ["vllm", "serve", base, "--host", host, "--port", str(port), "--served-model-name", served_name,
           "--max-num-seqs", str(max_concurrent)]
    if adapters:
        ranks = [json.loads((adapter_folder(p) / "adapter_config.json").read_text()).get("r", 16)
                 for p in adapters.values()]
        cmd += ["--enable-lora", "--max-loras", str(len(adapters)), "--max-lora-rank", str(max(ranks)),
                "--lora-modules", *[f"{n}={adapter_folder(p)}" for n, p in adapters.items()]]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd


def run_vllm(target: str, *, host: str, port: int, adapters: dict[str, str] | None, api_key: str | None,
             max_concurrent: int) -> None:
    """Start vLLM's own OpenAI server on a CUDA GPU; refuse clearly where there is none."""
    import torch

    if not torch.cuda.is_available():
        raise fail("--backend vllm needs a CUDA GPU and this machine has none",
                   "serve with --backend transformers (or llamacpp for a .gguf) on CPU")
    if shutil.which("vllm") is None:
        raise fail("--backend vllm needs vLLM, which is not installed", "pip install vllm (on the GPU machine)")
    from tunesmith import runs
    from tunesmith.models.loading import materialize, resolve

    adapters = dict(adapters or {})
    path = Path(target)
    if runs.is_run_dir(path) and (path / "adapter").is_dir():
        from tunesmith.config import load_config

        cfg = load_config(path / runs.CONFIG_FILE)
        base = str(materialize(resolve(cfg.model.name, cfg.model.gguf_file)))
        adapters = {path.resolve().name: str(path / "adapter"), **adapters}
        served = model_id(cfg.model.name)
    else:
        base = str(materialize(resolve(str(path / "model") if (path / "model").is_dir() else target)))
        served = model_id(target)
    cmd = vllm_command(base, adapters, host=host, port=port, api_key=api_key, max_concurrent=max_concurrent,
                       served_name=served)
    shown = [("***" if prev == "--api-key" else a) for prev, a in zip([""] + cmd, cmd)]
    print("tunesmith: starting vLLM:", " ".join(shown), flush=True)
    raise SystemExit(subprocess.call(cmd))


def model_id(name: str) -> str:
    """The id a base model is served under: an embedded or hub name as is, a path's last part."""
    p = Path(name)
    if p.suffix == ".gguf":
        return p.stem
    return p.name if (p.exists() or name.startswith((".", "/", "~"))) else name


__all__ = ["TransformersBackend", "LlamaCppBackend", "Row", "Prompt", "Sampling", "vllm_command", "run_vllm"]
