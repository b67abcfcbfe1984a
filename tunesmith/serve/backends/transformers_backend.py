"""TransformersBackend: a transformers causal LM with peft LoRA adapters chosen per row.

Continuous batching: the worker thread decodes every running row together, one token per step, over
one KV cache (_Batch). A request that arrives while rows are decoding is prefilled at the next step
and its cache merged into the batch (left padding plus an attention mask and explicit position
ids keep each row's attention and RoPE positions what they would be alone); a finished row leaves
at once. Rows with different adapters share each forward through peft's mixed-adapter batches
(`adapter_names=[...]`, "__base__" for none), and each row samples with its own temperature, top_p
and torch.Generator (_pick), so a seeded row reproduces its text whatever else shares the batch.
Stop strings, max_tokens and streaming are each row's _Progress (base.py).

Written by hand rather than with transformers' own continuous batching (`generate_batch`,
`init_continuous_batching` in transformers 5): that one pages the cache for one generation config
shared by all requests, and has neither peft's per-row adapters nor per-row sampling and seeds.
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
        self._batch = _Batch()  # the rows decoding now (continuous batching)
        text_config = model.config.get_text_config(decoder=True)
        self._joinable = not (getattr(text_config, "sliding_window", None)
                              or "sliding_attention" in (getattr(text_config, "layer_types", None) or ()))
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

    def _active(self) -> int:
        return len(self._batch.slots)

    def _room(self) -> int:
        # A sliding-window cache keeps only its last tokens, so it cannot be re-padded to take in
        # new rows: such a model runs each batch to its end, as before continuous batching.
        if self._batch.slots and not self._joinable:
            return 0
        return self.max_batch - len(self._batch.slots)

    def _abort(self, error: Exception) -> None:
        for slot in self._batch.slots:
            slot.row.emit("error", error)
        self._batch = _Batch()

    def _step(self, rows: list[Row]) -> None:
        """Prefill the newly admitted rows into the batch, then decode one token for every row."""
        import torch

        from tunesmith.hardware import recheck_threads

        recheck_threads()  # here, on the thread that runs the model: OpenMP keeps thread counts per thread
        # A row names its adapter by model id; the slot keeps peft's internal name ("" when the id
        # is gone already), so a later reload under the same id never switches a running row.
        new = [_Slot(r, _Progress(r, self._decode, self.eos), self._adapters.get(r.adapter, "") if r.adapter else None)
               for r in rows]
        loaded = set(self._adapters.values())
        for slot in [*self._batch.slots, *new]:  # an adapter may have been unloaded meanwhile
            if slot.adapter is not None and slot.adapter not in loaded:
                slot.row.emit("error", LookupError(f"the model '{slot.row.adapter}' was unloaded"))
                slot.progress.done = True
        self._batch.drop_finished()
        new = [s for s in new if not s.progress.done]
        with torch.inference_mode():
            if new:
                self._prefill(new)
            if self._batch.slots:
                self._decode_step()

    def _forward(self, slots: list[_Slot], **inputs):
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            inputs["adapter_names"] = [s.adapter or BASE for s in slots]
        # float32 logits of the last position, as `generate` takes them.
        out = self.model(**inputs, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float(), out.past_key_values

    def _prefill(self, slots: list[_Slot]) -> None:
        import torch

        width = max(len(s.row.prompt.ids) for s in slots)
        # Left padding: every row continues from the same right edge (decoder-only).
        ids = torch.tensor([[self.pad_id] * (width - len(s.row.prompt.ids)) + s.row.prompt.ids for s in slots])
        mask = torch.tensor([[0] * (width - len(s.row.prompt.ids)) + [1] * len(s.row.prompt.ids) for s in slots])
        # Positions count real tokens only, so a padded row sees the RoPE angles it would see alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(slots, input_ids=ids, attention_mask=mask, position_ids=positions)
        for i, slot in enumerate(slots):
            slot.pos = len(slot.row.prompt.ids)
            slot.next = _pick(logits[i], slot.sampler)
            slot.progress.push(slot.next)
        self._batch.join(slots, cache, mask)

    def _decode_step(self) -> None:
        import torch

        batch = self._batch
        batch.mask = torch.cat([batch.mask, torch.ones(len(batch.slots), 1, dtype=batch.mask.dtype)], dim=1)
        logits, batch.cache = self._forward(
            batch.slots, input_ids=torch.tensor([[s.next] for s in batch.slots]), attention_mask=batch.mask,
            position_ids=torch.tensor([[s.pos] for s in batch.slots]), past_key_values=batch.cache)
        for i, slot in enumerate(batch.slots):
            slot.pos += 1
            if not slot.progress.done:
                slot.next = _pick(logits[i], slot.sampler)
                slot.progress.push(slot.next)
        batch.drop_finished(trim=self._joinable)


class _Slot:
    """One row in the running batch: its output, adapter, sampler, next token and its position."""

    def __init__(self, row: Row, progress: _Progress, adapter: str | None):
        self.row, self.progress, self.adapter = row, progress, adapter
        self.sampler = _sampler(row.sampling)
        self.next = 0  # the token to feed at the next decode step
        self.pos = 0  # its position (real tokens before it)


class _Batch:
    """The rows decoding together: one DynamicCache for all of them, left-padded to a shared length,
    and its attention mask (0 over each row's padding). Row i of the cache is slots[i]."""

    def __init__(self):
        self.slots: list[_Slot] = []
        self.cache = None
        self.mask = None

    def join(self, slots: list[_Slot], cache, mask) -> None:
        """Merge the freshly prefilled `slots` (their own cache and mask) into the batch."""
        import torch

        if not self.slots:
            self.slots, self.cache, self.mask = slots, cache, mask
        else:
            width = max(self.mask.shape[1], mask.shape[1])

            def pad(t, dim: int):  # left-pad the sequence dimension with zeros (masked out)
                extra = width - t.shape[dim]
                if not extra:
                    return t
                shape = list(t.shape)
                shape[dim] = extra
                return torch.cat([t.new_zeros(shape), t], dim=dim)

            for mine, theirs in zip(self.cache.layers, cache.layers):
                mine.keys = torch.cat([pad(mine.keys, 2), pad(theirs.keys, 2)])
                mine.values = torch.cat([pad(mine.values, 2), pad(theirs.values, 2)])
            self.mask = torch.cat([pad(self.mask, 1), pad(mask, 1)])
            self.slots = self.slots + slots
        self.drop_finished()

    def drop_finished(self, trim: bool = True) -> None:
        """Rows that finished (or whose client left) leave the batch; with `trim`, so do the leading
        cache columns that are padding for every row left."""
        import torch

        for s in self.slots:
            if s.row.cancelled:
                s.progress.done = True
        keep = [i for i, s in enumerate(self.slots) if not s.progress.done]
        if not keep:
            self.__init__()
            return
        if len(keep) < len(self.slots):
            index = torch.tensor(keep)
            self.cache.batch_select_indices(index)
            self.mask = self.mask[index]
            self.slots = [self.slots[i] for i in keep]
        start = int(self.mask.any(0).int().argmax()) if trim else 0
        if start:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
            self.mask = self.mask[:, start:]


def _sampler(s: Sampling):
    """None for greedy; else transformers' temperature and top-p warpers and the row's own generator."""
    if s.temperature <= 0:
        return None
    import torch
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    g = torch.Generator()
    if s.seed is None:
        g.seed()  # non-deterministic
    else:
        g.manual_seed(s.seed % 2 ** 63)  # any JSON integer is a valid seed
    warpers = [TemperatureLogitsWarper(s.temperature)]
    if s.top_p < 1.0:
        warpers.append(TopPLogitsWarper(s.top_p))
    return warpers, g


def _pick(logits, sampler) -> int:
    """The next token of one row from its float32 logits: argmax, or one draw from its generator."""
    import torch

    if sampler is None:
        return int(logits.argmax())
    warpers, g = sampler
    row = logits[None]
    for w in warpers:
        row = w(None, row)  # neither warper reads input_ids
    return int(torch.multinomial(torch.softmax(row[0], dim=-1), 1, generator=g))
