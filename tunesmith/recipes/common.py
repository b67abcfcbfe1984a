"""What every training recipe shares: setup, row loading by kind, training arguments, the logging
callback, collators, and the timing and throughput of a run. The run directory itself (config,
manifest, data report, one writer) is `runs.start`.

A recipe calls these in order and keeps only its own differences (torchtune's and litgpt's
recipes are the model): setup -> data -> model -> train -> evaluate -> save.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith import runs
from tunesmith.data.templates import IGNORE_INDEX


@dataclass(frozen=True)
class Setup:
    precision: tuple[str, str]  # (value, why)
    source: object  # models.loading.ModelSource


def setup(cfg) -> Setup:
    """Seed, threads, precision and the model's source, the same way for every recipe."""
    from transformers import set_seed

    from tunesmith.hardware import resolve_precision, use_threads
    from tunesmith.models.loading import check_max_length, resolve

    set_seed(cfg.seed)
    precision = resolve_precision(cfg.train.precision)
    use_threads(cfg.train.threads)
    source = resolve(cfg.model.name, cfg.model.gguf_file)
    # before any data or weights load: a max_length past the model's positions is said now
    check_max_length(source, cfg.data.max_length, rope(cfg), cfg.model.trust_remote_code)
    return Setup(precision, source)


def rope(cfg) -> tuple[str, float]:
    """model.rope_scaling as load_model takes it."""
    return cfg.model.rope_scaling, cfg.model.rope_factor


def kinds(cfg) -> tuple[str, ...]:
    """The record kinds the run's recipe trains on (stated once, in recipes.KINDS)."""
    from tunesmith.recipes.registry import KINDS

    return KINDS[cfg.recipe]


def canary_rows(cfg) -> list:
    """The training rows that plant the config's audit canaries (none unless audit.canaries > 0)."""
    from tunesmith.data import canaries

    return canaries.rows(canaries.for_config(cfg), "text" if kinds(cfg) == ("text",) else "chat",
                         cfg.data.system_prompt)


def canary_fields(cfg) -> dict:
    """The manifest's record of the planted canaries (the audit reads them back)."""
    from tunesmith.data import canaries

    planted = canaries.for_config(cfg)
    return {"canaries": canaries.manifest_entry(planted)} if planted else {}


def load_rows(cfg):
    """Every train/validation row (data.Loaded), refused up front when its kind is not the recipe's."""
    from tunesmith.data.prepare import check_kinds, load_all

    loaded = load_all(cfg.data, cfg.seed)
    check_kinds(loaded.train + loaded.validation, kinds(cfg))
    return loaded


def base_dtype(precision: tuple[str, str], method: str) -> str:
    """The dtype the base weights are stored in. LoRA never updates them, so under bf16 they are
    stored in bf16: no per-step fp32->bf16 casts, half the memory (peft keeps the adapter itself in
    fp32). Full fine-tuning keeps fp32 master weights, with bf16 only as autocast."""
    return "bfloat16" if precision[0] == "bf16" and method != "full" else "float32"


def output_dir(cfg, run_dir: Path) -> Path:
    """Where the trained weights go: model/ for full fine-tuning, adapter/ otherwise."""
    return run_dir / ("model" if cfg.train.method == "full" else "adapter")


# --------------------------------------------------------------------------- collators


class PackedCollator:
    """Stacks packed rows (all max_length long). No attention mask on purpose: transformers builds
    the block-diagonal causal mask from the restarting position_ids (see data/pack.py)."""

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        return {k: torch.tensor([r[k] for r in rows], dtype=torch.long)
                for k in ("input_ids", "labels", "position_ids")}


class PadCollator:
    """Right-pads a batch to its longest row; padding never carries loss and is masked out."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class SplitCollator:
    """Packed rows (they carry position_ids) go to one collator, plain rows to the other."""

    def __init__(self, packed, plain):
        self.packed, self.plain = packed, plain

    def __call__(self, rows: list[dict]) -> dict:
        return self.packed(rows) if "position_ids" in rows[0] else self.plain(rows)


# --------------------------------------------------------------------------- label-only LM head

# Causal LMs whose logits are exactly lm_head(last hidden state), soft-capped where the config says
# (read in transformers 5's modeling files). Others keep their own loss.
LABEL_HEAD_MODELS = frozenset({"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                               "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM",
                               "SmolLM3ForCausalLM", "Olmo2ForCausalLM"})
# Labelled positions per slice of the head: a slice's fp32 logits (positions x vocabulary) are
# recomputed in the backward pass instead of kept, so at most one slice exists at a time.
HEAD_CHUNK = 1024


def label_head_model(model):
    """The causal LM inside `model` when its loss can be computed at labelled positions only: a
    known decoder family, plain or with adapters injected into its layers (LoRA, DoRA, VeRA, IA3).
    None for prompt-learning methods, whose peft wrapper adds virtual tokens in its own forward."""
    base = model
    if hasattr(model, "peft_config"):
        if any(c.is_prompt_learning for c in model.peft_config.values()):
            return None
        base = model.get_base_model()
    return base if type(base).__name__ in LABEL_HEAD_MODELS else None


def label_head_loss(causal_lm, inputs: dict, num_items_in_batch=None):
    """The next-token loss of `inputs` (input_ids, labels, and attention_mask or position_ids),
    equal to transformers' ForCausalLMLoss, with the LM head applied only where a label is.

    The model's own path makes (batch x length x vocabulary) logits, most of them for prompt and
    padding positions whose loss is masked out: on SmolLM2 (49,152 tokens) and the quickstart rows,
    66% of positions carry no label. Summed over labelled positions and divided by
    num_items_in_batch (the accumulated batch's label count) when given, as transformers does."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    labels = inputs["labels"]
    hidden = causal_lm.model(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
    targets = labels[:, 1:]  # the hidden state at t predicts token t + 1
    keep = targets != IGNORE_INDEX
    h, t = hidden[:, :-1][keep], targets[keep]
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)

    def chunk_loss(h_chunk, t_chunk):
        logits = causal_lm.lm_head(h_chunk)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits.float(), t_chunk, reduction="sum")

    if len(t) <= HEAD_CHUNK:
        total = chunk_loss(h, t) if len(t) else hidden.sum() * 0.0  # no label: a zero that keeps the graph
    else:
        total = sum(checkpoint(chunk_loss, hc, tc, use_reentrant=False)
                    for hc, tc in zip(h.split(HEAD_CHUNK), t.split(HEAD_CHUNK)))
    count = num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1)
    if torch.is_tensor(count):
        count = count.to(total.device)
    return total / count


def label_head_trainer():
    """transformers' Trainer with the loss computed by label_head_loss where it applies."""
    from transformers import Trainer

    class LabelHeadTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Only an unwrapped model: calling inside a DDP/FSDP wrapper would skip its gradient sync.
            causal_lm = label_head_model(model) if model is self.accelerator.unwrap_model(model) else None
            if causal_lm is None or "labels" not in inputs:
                self.loss_is_scaled_for_ga = None  # the trainer's own rule for the model's loss
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # accelerate's autocast wraps the model's forward, which this path does not call.
            with self.accelerator.autocast():
                loss = label_head_loss(causal_lm, inputs, num_items_in_batch)
            # Normalised by the accumulated batch's label count: the trainer must not divide again.
            self.loss_is_scaled_for_ga = num_items_in_batch is not None
            return (loss, {"loss": loss}) if return_outputs else loss

    return LabelHeadTrainer


# --------------------------------------------------------------------------- the trainer


def training_arguments(train, run_dir: Path, precision: str, seed: int, has_eval: bool, args_cls=None, **extra):
    """Map our TrainConfig onto transformers' TrainingArguments, or onto one of trl's subclasses
    (`args_cls`, e.g. DPOConfig) with its own settings in `extra`."""
    import torch
    from transformers import TrainingArguments

    from tunesmith import tracking

    return (args_cls or TrainingArguments)(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        bf16=precision == "bf16",  # on CPU accelerate runs this as bf16 autocast over fp32 weights
        # Decided, not inherited (trl turns it on by default): checkpointing costs 15-30% speed on
        # CPU and these models fit.
        activation_checkpointing=train.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=train.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval and train.eval_steps > 0 else "no",
        eval_steps=train.eval_steps or None,
        save_strategy="steps",
        # Early stopping keeps the best checkpoint, so checkpoints must fall on evaluation steps.
        save_steps=train.eval_steps if train.early_stopping_patience else train.save_steps,
        load_best_model_at_end=bool(train.early_stopping_patience),
        metric_for_best_model="eval_loss" if train.early_stopping_patience else None,
        greater_is_better=False if train.early_stopping_patience else None,
        save_total_limit=train.save_total_limit,
        seed=seed,
        data_seed=seed,
        include_num_input_tokens_seen="non_padding",
        # experiment trackers (tunesmith/tracking.py points them at local, offline stores)
        report_to=tracking.prepare(train.report_to, run_dir, run_dir.name, train.tracking_uri),
        disable_tqdm=True,  # our own bar shows loss and tokens/s
        dataloader_num_workers=0,
        torch_compile=train.compile,
        **extra,
    )


def early_stopping(trainer, train) -> None:
    """Stop after train.early_stopping_patience evaluations without improvement of the run's
    metric_for_best_model (the Trainer keeps the best checkpoint: load_best_model_at_end)."""
    if train.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        trainer.add_callback(EarlyStoppingCallback(train.early_stopping_patience, train.early_stopping_threshold))


def logger_callback(run_dir: Path, show_progress: bool):
    """A TrainerCallback writing metrics.jsonl and a progress bar with loss, tokens/s and ETA."""
    from transformers import TrainerCallback

    class RunLogger(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            from tqdm.auto import tqdm

            self.t0, self.tokens0, self.step0 = time.time(), state.num_input_tokens_seen, state.global_step
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                            disable=not (show_progress and state.is_world_process_zero),
                            dynamic_ncols=True)

        def tokens_per_s(self, state) -> float:
            dt = time.time() - self.t0
            return (state.num_input_tokens_seen - self.tokens0) / dt if dt > 0 else 0.0

        def on_step_end(self, args, state, control, **kw):
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            for key, value in logs.items():  # loss, eval_loss, learning_rate, grad_norm, rewards/... (DPO)
                if isinstance(value, (int, float)) and not key.endswith(("_runtime", "_per_second", "epoch")):
                    row[key] = value
            if "loss" in logs:
                row["tokens_per_s"] = round(self.tokens_per_s(state), 1)
                row["tokens_seen"] = state.num_input_tokens_seen
            if len(row) > 2:
                runs.append_metrics(run_dir, row)
                post = {k: f"{row[k]:.4g}" for k in ("loss", "eval_loss") if k in row}
                post["tok/s"] = f"{self.tokens_per_s(state):.0f}"
                self.bar.set_postfix(post, refresh=False)

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()

    return RunLogger()


def callbacks(run_dir: Path, show_progress: bool, extra: tuple = ()) -> list:
    """Our logger, the thread rechecks (shared CPU), then the caller's (a sweep's pruning hook)."""
    from tunesmith.hardware import thread_rechecks

    return [logger_callback(run_dir, show_progress), thread_rechecks(), *extra]


def fit(trainer, resume_from: str | None) -> dict:
    """Train (resuming from a checkpoint when given); returns the result's shared fields: loss,
    steps, seconds, tokens seen and tokens/s. The trainer's own printer is dropped: it would print
    raw log dicts over our progress bar."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    pairs = _count_pair_tokens(trainer)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - t0
    # transformers counts the non-padding tokens of every training batch (include_num_input_tokens_seen)
    # when the batch has input_ids; trl's GRPO adds prompt and completion tokens itself.
    tokens = trainer.state.num_input_tokens_seen or pairs[0]
    return {"train_loss": result.training_loss, "steps": trainer.state.global_step, **throughput(tokens, seconds)}


def _count_pair_tokens(trainer) -> list[int]:
    """A one-item list that counts the tokens of the training batches in chosen_/rejected_ masks.

    trl's ORPO and CPO (SimPO) trainers collate chosen_* and rejected_* ids (each pair's prompt and
    answer), with no input_ids, so transformers cannot count their tokens and such runs reported no
    tokens/s. The training loader takes its collator when it is built, so wrapping the collator
    for that one build counts training batches only, never evaluation ones. Per process: under
    several processes this is the main process's share, where transformers' count is global."""
    counted = [0]
    build = trainer.get_train_dataloader

    def counting_loader():
        collate = trainer.data_collator

        def counting(rows):
            batch = collate(rows)
            counted[0] += sum(int(batch[k].sum()) for k in ("chosen_attention_mask", "rejected_attention_mask")
                              if k in batch)
            return batch

        trainer.data_collator = counting
        try:
            return build()
        finally:
            trainer.data_collator = collate

    trainer.get_train_dataloader = counting_loader
    return counted


def throughput(tokens: int, seconds: float) -> dict:
    """Seconds, tokens and tokens/s as every recipe's result records them (None when nothing was
    counted, rather than a rate of 0)."""
    return {"train_seconds": round(seconds, 1), "tokens_seen": tokens,
            "tokens_per_s": round(tokens / seconds, 1) if seconds and tokens else None}


def last_eval(trainer) -> dict:
    """The evaluation of the last step when eval_steps already ran it (no second pass), else a
    fresh one."""
    done = [h for h in trainer.state.log_history if "eval_loss" in h and h.get("step") == trainer.state.global_step]
    return done[-1] if done else trainer.evaluate()
