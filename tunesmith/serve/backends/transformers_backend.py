"""TransformersBackend: a transformers causal LM with peft LoRA adapters chosen per row.

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
import threading
from pathlib import Path

from tunesmith.errors import fail
from tunesmith.serve.backends.base import (
    Prompt,
    Row,
    Sampling,
    _Progress,
    _Worker,
    adapter_folder,
    check_adapter_name,
    model_id,
    resolve_adapter_path,
)

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


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
