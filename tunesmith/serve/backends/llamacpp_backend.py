"""LlamaCppBackend: a GGUF through llama-cpp-python on CPU, one sequence at a time."""

from __future__ import annotations

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
