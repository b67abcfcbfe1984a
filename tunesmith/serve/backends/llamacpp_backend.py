"""LlamaCppBackend: a GGUF through llama-cpp-python on CPU, one sequence at a time."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tunesmith.errors import fail
from tunesmith.serve.backends.base import Prompt, Row, _Progress, _Worker, model_id


class LlamaCppBackend(_Worker):
    """A GGUF through llama-cpp-python (CPU), one sequence at a time; no runtime adapters.

    Token by token through `Llama.generate`, so stop strings, max_tokens, streaming and token
    counts follow the same rules as the transformers backend; the chat template is the GGUF's own
    (`tokenizer.chat_template`), rendered with llama-cpp-python's Jinja2ChatFormatter."""

    name = "llamacpp"

    def __init__(self, gguf_path: str, *, base_id: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, max_batch: int = 8):
        # llama.cpp's CPU backend opens one OpenMP parallel region per graph (per token), and
        # between tokens OpenMP's default policy keeps the idle threads spinning on the cores that
        # our own per-token work (detokenizing, streaming over HTTP) and other processes need.
        # Sleeping costs one futex wake per token; spinning cost 5x: on 2 busy cores, 2 threads
        # decoded 6-15 tokens/s spinning and 65-74 sleeping, and a fresh server's first request
        # stalled 9 s. libgomp reads it once, when llama_cpp's library loads, so it is set for the
        # import only (torch's own libgomp and child processes keep theirs); an OMP_WAIT_POLICY
        # already in the environment is kept.
        ours = "OMP_WAIT_POLICY" not in os.environ
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise fail("the llama.cpp backend needs llama-cpp-python, which is not installed",
                       "pip install llama-cpp-python==0.3.36 (builds in about 3 minutes), or use "
                       "--backend transformers") from None
        finally:
            if ours:
                os.environ.pop("OMP_WAIT_POLICY", None)
        from tunesmith import hardware

        # llama.cpp's threads meet at a barrier per op and spin while they wait, so one thread more
        # than there are free cores stalls every op: one per free core, as for torch. The prompt
        # gets the same count: llama-cpp-python's own default for it (n_threads_batch) is every
        # CPU of the machine, whatever the affinity mask or the load (measured on 2 busy cores:
        # 2 threads decode at 10-12 tokens/s where 1 thread does 75-127, and a 20-token prompt
        # took seconds). The count is re-measured as the load changes (_recheck_threads).
        self._auto_threads = not n_threads
        self.threads = n_threads or hardware.pick_threads()["threads"]
        self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=self.threads,
                         n_threads_batch=self.threads, verbose=False)
        self._cpus, self._cores = hardware.usable_cores()
        self._quota = hardware.cgroup_quota()
        self._sample = hardware.cpu_sample(self._cpus)
        self._pieces: dict[int, bytes] = {}  # token -> its text, for _decode
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
        # _Progress decodes a row's whole output after every token; llama-cpp-python's detokenize
        # makes one ctypes call per token, so that would be quadratic in calls. Each token's
        # piece is looked up once and cached (the same bytes: a piece does not depend on its
        # neighbours when special tokens are not rendered).
        pieces = self._pieces
        for t in ids:
            if t not in pieces:
                pieces[t] = self.llm.detokenize([t])
        out = b"".join(pieces[t] for t in ids)
        if ids and ids[0] == self.llm.token_bos() and out[:1] == b" ":  # as detokenize does
            out = out[1:]
        return out.decode("utf-8", errors="replace")

    def _recheck_threads(self) -> None:
        """Follow other processes' load, as hardware.recheck_threads does for torch: every
        RECHECK_S, one read of /proc/stat (our own CPU time subtracted) and, if the choice changed,
        llama_set_n_threads, which takes effect at the next decode."""
        from tunesmith import hardware

        if not self._auto_threads or time.monotonic() - self._sample.at < hardware.RECHECK_S:
            return
        sample = hardware.cpu_sample(self._cpus)
        others = hardware.others_busy(self._sample, sample)
        self._sample = sample
        threads, _ = hardware.choose_threads(self._cores, self._quota, others)
        if threads != self.threads:
            from llama_cpp import llama_cpp as C

            C.llama_set_n_threads(self.llm._ctx.ctx, threads, threads)
            self.threads = threads

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
            self._recheck_threads()
            for token in self.llm.generate(r.prompt.ids, temp=s.temperature, top_p=s.top_p, top_k=0,
                                           min_p=0.0, typical_p=1.0, repeat_penalty=1.0, reset=True):
                if progress.push(token):
                    break
                self._recheck_threads()
            if not progress.done:
                progress._finish(self._decode(progress.ids), "length")
