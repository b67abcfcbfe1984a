"""Supervised fine-tuning (instruction / chat, text -> label tasks) and continued pre-training
(raw text, recipe: cpt) with LoRA, the other peft methods, or full updates.

Reads top to bottom: setup -> data -> model -> train -> evaluate -> save. The training loop is
transformers' Trainer (on accelerate), so checkpointing, resume, gradient accumulation with
correct loss normalisation, and multi-GPU come from well-kept code; this file only decides.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.data.templates import IGNORE_INDEX
from tunesmith.models import adapters
from tunesmith.recipes import KINDS


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


class _SplitCollator:
    """Packed rows (they carry position_ids) go to one collator, plain rows to the other."""

    def __init__(self, packed, plain):
        self.packed, self.plain = packed, plain

    def __call__(self, rows: list[dict]) -> dict:
        return self.packed(rows) if "position_ids" in rows[0] else self.plain(rows)


def _make_logger_callback(run_dir: Path, show_progress: bool):
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


def _training_arguments(train, run_dir: Path, precision: str, seed: int, has_eval: bool, args_cls=None, **extra):
    """Map our TrainConfig onto transformers' TrainingArguments, or onto one of trl's subclasses
    (`args_cls`, e.g. DPOConfig) with its own settings in `extra`."""
    import torch
    from transformers import TrainingArguments

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
        report_to="none",
        disable_tqdm=True,  # our own bar shows loss and tokens/s
        dataloader_num_workers=0,
        **extra,
    )


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train according to `cfg` (a RunConfig); returns the run directory."""
    if cfg.privacy.enabled:  # DP-SGD needs its own loop (opacus wraps the optimizer and the sampler)
        from tunesmith.recipes import dp

        return dp.run(cfg, show_progress=show_progress, callbacks=callbacks)
    from datasets import Dataset
    from transformers import PrinterCallback, Trainer, set_seed

    from tunesmith.config import dump_yaml
    from tunesmith.data.prepare import data_files, prepare
    from tunesmith.hardware import resolve_precision, thread_rechecks, training_attention, use_threads
    from tunesmith.models.loading import load_model, load_tokenizer, resolve

    # --- setup
    set_seed(cfg.seed)
    precision = resolve_precision(cfg.train.precision)
    use_threads(cfg.train.threads)
    source = resolve(cfg.model.name, cfg.model.gguf_file)

    # --- data (before the run directory exists: bad data never leaves a half-made run behind)
    tokenizer = load_tokenizer(source, cfg.model.chat_template, cfg.model.trust_remote_code)
    prepared = prepare(cfg.data, tokenizer, cfg.seed, KINDS[cfg.recipe])
    run_dir, resume_from = runs.prepare_run_dir(cfg)
    writer = runs.is_main_process()  # under accelerate launch only the main process writes the run directory
    if writer:
        (run_dir / runs.CONFIG_FILE).write_text(dump_yaml(cfg))
    manifest = runs.build_manifest(cfg, data_files=data_files(cfg.data), model_source=source, precision=precision)
    manifest["tokenizer"] = {  # inherited values, with where they came from (STYLE rule 6)
        "chat_template": "model.chat_template (config)" if cfg.model.chat_template else "the model's tokenizer",
        "pad_token": tokenizer.pad_token, "eos_token": tokenizer.eos_token}
    if writer:
        runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
        runs.write_json(run_dir / "data_report.json", prepared.report())
    if cfg.data.packing:
        from tunesmith.data.pack import pack

        packs, packing = pack(prepared.train, cfg.data.max_length, tokenizer.pad_token_id)
        if writer:
            runs.write_json(run_dir / "data_report.json", {**prepared.report(), "packing": packing})
        train_ds = Dataset.from_list([vars(p) for p in packs])
        if writer:
            print(f"tunesmith: packed {packing['examples']} rows into {packing['packs']} sequences of "
                  f"{cfg.data.max_length} tokens ({packing['efficiency']:.0%} real tokens, against "
                  f"{packing['padded_efficiency']:.0%} padded)", flush=True)
    else:
        train_ds = Dataset.from_list([{"input_ids": r.input_ids, "labels": r.labels} for r in prepared.train])
    eval_ds = Dataset.from_list([{"input_ids": r.input_ids, "labels": r.labels}
                                 for r in prepared.validation]) if prepared.validation else None
    s, skipped = prepared.train_stats, prepared.load["train"]["rows"]["skipped"]
    if skipped and writer:
        print(f"tunesmith: skipped bad rows (data.on_error=skip), by reason: {skipped}", flush=True)
    if writer:
        print(f"tunesmith: {s.kept} training rows ({s.dropped_overlong} dropped and {s.truncated} truncated as "
              f"longer than {cfg.data.max_length} tokens), {len(prepared.validation)} validation rows; precision "
              f"{precision[0]} ({precision[1]})", flush=True)

    # --- model
    # LoRA never updates the base weights, so under bf16 they are stored in bf16: no per-step
    # fp32->bf16 casts, half the memory (peft keeps the adapter itself in fp32). Full fine-tuning
    # keeps fp32 master weights, with bf16 only as autocast.
    base_dtype = "bfloat16" if precision[0] == "bf16" and cfg.train.method != "full" else "float32"
    attention = training_attention(cfg.model.attention, cfg.data.max_length)
    model = load_model(source, cfg.model.trust_remote_code, dtype=base_dtype, attention=attention,
                       quantization=cfg.model.quantization)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    if cfg.train.method == "full":
        frozen = adapters.freeze(model, cfg.train.freeze) if cfg.train.freeze else 0
        manifest["frozen_tensors"] = frozen
    else:
        model = adapters.apply(model, cfg.train.method, cfg.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    manifest["parameters"] = {"trainable": trainable, "total": total}
    manifest["model"].update(base_dtype=base_dtype, attention=attention)
    if cfg.model.quantization != "none":  # 4/8-bit linear layers; embeddings and norms stay fp32
        manifest["model"].update(quantization=cfg.model.quantization, base_dtype="float32", compute_dtype=base_dtype)

    # --- train
    args = _training_arguments(cfg.train, run_dir, precision[0], cfg.seed, eval_ds is not None,
                               remove_unused_columns=False)  # our rows carry exactly what the model takes
    # Packed training rows need their position ids; eval rows stay unpacked and padded.
    collator = PadCollator(tokenizer.pad_token_id)
    if cfg.data.packing:
        collator = _SplitCollator(PackedCollator(), collator)
    optimizers = (adapters.loraplus_optimizer(model, cfg.train.learning_rate, cfg.lora.plus_ratio,
                                              cfg.train.weight_decay), None) if cfg.lora.plus_ratio else (None, None)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=collator, optimizers=optimizers,
                      callbacks=[_make_logger_callback(run_dir, show_progress), thread_rechecks(), *callbacks])
    trainer.remove_callback(PrinterCallback)  # it would print raw log dicts over our progress bar
    if cfg.train.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        trainer.add_callback(EarlyStoppingCallback(cfg.train.early_stopping_patience,
                                                   cfg.train.early_stopping_threshold))
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - t0

    # --- evaluate
    final = {"train_loss": result.training_loss, "steps": trainer.state.global_step,
             "stopped_early": bool(cfg.train.early_stopping_patience) and trainer.state.global_step < args.max_steps,
             "best_checkpoint": trainer.state.best_model_checkpoint,
             "train_seconds": round(seconds, 1), "tokens_seen": trainer.state.num_input_tokens_seen,
             "tokens_per_s": round(trainer.state.num_input_tokens_seen / seconds, 1) if seconds else None}
    if eval_ds is not None:
        # Reuse the evaluation of the last step when eval_steps already ran it (no second pass).
        done = [h["eval_loss"] for h in trainer.state.log_history
                if "eval_loss" in h and h.get("step") == trainer.state.global_step]
        eval_loss = done[-1] if done else trainer.evaluate()["eval_loss"]
        final.update(eval_loss=eval_loss, eval_perplexity=math.exp(min(eval_loss, 50)))

    # --- save
    out = run_dir / ("model" if cfg.train.method == "full" else "adapter")
    runs.save_trained(trainer, model, tokenizer, out)
    runs.complete(run_dir, manifest, final, resume_from, out)
    return run_dir
