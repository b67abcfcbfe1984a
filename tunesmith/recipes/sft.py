"""Supervised fine-tuning (instruction / chat, text -> label tasks) and continued pre-training
(raw text, recipe: cpt) with LoRA, the other peft methods, or full updates.

Reads top to bottom: setup -> data -> model -> train -> evaluate -> save. The training loop is
transformers' Trainer (on accelerate), so checkpointing, resume, gradient accumulation with
correct loss normalisation, and multi-GPU come from well-kept code; this file only decides.
"""

from __future__ import annotations

import math
from pathlib import Path

from tunesmith import runs
from tunesmith.recipes import common
from tunesmith.recipes.common import PackedCollator, PadCollator, SplitCollator


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train according to `cfg` (a RunConfig); returns the run directory."""
    if cfg.privacy.enabled:  # DP-SGD needs its own loop (opacus wraps the optimizer and the sampler)
        from tunesmith.recipes import dp

        return dp.run(cfg, show_progress=show_progress, callbacks=callbacks)
    from transformers import Trainer

    from tunesmith.data.prepare import prepare
    from tunesmith.hardware import training_attention, training_kernels
    from tunesmith.models import adapters, moe
    from tunesmith.models.loading import load_model, load_tokenizer, model_config

    # --- setup
    s = common.setup(cfg)
    attention = training_attention(cfg.model.attention, cfg.data.max_length, s.precision[0])
    kernels = training_kernels(cfg.train.kernels)
    for key, value in (("moe.targets", cfg.moe.targets), ("moe.router_aux_loss_coef", cfg.moe.router_aux_loss_coef)):
        if value not in ([], None):  # a dense model is refused now, before the run directory exists
            moe.require_moe(model_config(s.source, cfg.model.trust_remote_code), value, key)

    # --- data (before the run directory exists: bad data never leaves a half-made run behind)
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    prepared = prepare(cfg.data, tokenizer, cfg.seed, common.kinds(cfg), extra=common.canary_rows(cfg))
    train_ds, eval_ds, report = _datasets(cfg, prepared, tokenizer)
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer, data_report=report,
                     **common.canary_fields(cfg))
    if runs.is_main_process():
        _say_data(cfg, prepared, report, s.precision)

    # --- model
    base_dtype = common.base_dtype(s.precision, cfg.train.method)
    model = load_model(s.source, cfg.model.trust_remote_code, dtype=base_dtype, attention=attention,
                       quantization=cfg.model.quantization, rope=common.rope(cfg))
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    if cfg.train.method == "full":
        run.manifest["frozen_tensors"] = adapters.freeze(model, cfg.train.freeze) if cfg.train.freeze else 0
    else:  # moe.targets: the experts, router, shared expert or attention of an MoE model (models/moe.py)
        model = adapters.apply(model, cfg.train.method, cfg.lora, moe_targets=cfg.moe.targets)
    info = {"base_dtype": base_dtype, "attention": attention, "kernels": list(kernels)}
    router = moe.router_aux(model, cfg.moe.router_aux_loss_coef)  # MoE models: the load-balancing loss
    if router:
        info["moe"] = {**router, **moe.adapted(model)}
    if cfg.model.quantization != "none":  # 4/8-bit linear layers; embeddings and norms stay fp32
        info.update(quantization=cfg.model.quantization, base_dtype="float32", compute_dtype=base_dtype)
    run.record_model(model, **info)

    # --- train
    args = common.training_arguments(cfg.train, run.dir, s.precision[0], cfg.seed, eval_ds is not None,
                                     remove_unused_columns=False,  # our rows carry exactly what the model takes
                                     use_liger_kernel=kernels[0] == "liger")
    # Packed training rows need their position ids; eval rows stay unpacked and padded.
    collator = PadCollator(tokenizer.pad_token_id)
    if cfg.data.packing:
        collator = SplitCollator(PackedCollator(), collator)
    optimizers = (adapters.loraplus_optimizer(model, cfg.train.learning_rate, cfg.lora.plus_ratio,
                                              cfg.train.weight_decay), None) if cfg.lora.plus_ratio else (None, None)
    if s.precision[0] == "bf16" and cfg.train.method != "full":
        adapters.keep_autocast_inputs(model)  # bf16 autocast: the adapters' fp32 input casts change nothing
    # Liger's fused linear cross-entropy already skips the full logits; the label-only head is the CPU's.
    trainer_cls = common.label_head_trainer() if cfg.train.label_head and kernels[0] != "liger" else Trainer
    if router:  # adds coef x the router's load-balancing loss and logs it as aux_loss (MoE models keep their
        # own loss: they are not in common.LABEL_HEAD_MODELS, so the label-only head is not used for them)
        trainer_cls = moe.aux_loss_trainer(trainer_cls, router["router_aux_loss_coef"])
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=collator, optimizers=optimizers,
                      callbacks=common.callbacks(run.dir, show_progress, callbacks))
    common.early_stopping(trainer, cfg.train)
    final = common.fit(trainer, run.resume_from)
    if cfg.data.packing:  # packs have no attention mask, so transformers counted every slot, padding too
        tokens = round(final["tokens_seen"] * report["packing"]["efficiency"])
        final.update(common.throughput(tokens, final["train_seconds"]))

    # --- evaluate
    final.update(stopped_early=bool(cfg.train.early_stopping_patience) and final["steps"] < args.max_steps,
                 best_checkpoint=trainer.state.best_model_checkpoint)
    if eval_ds is not None:
        eval_loss = common.last_eval(trainer)["eval_loss"]
        final.update(eval_loss=eval_loss, eval_perplexity=math.exp(min(eval_loss, 50)))

    # --- save
    out = common.output_dir(cfg, run.dir)
    runs.save_trained(trainer, model, tokenizer, out)
    run.complete(final, out)
    return run.dir


def _datasets(cfg, prepared, tokenizer):
    """(train, validation or None, data report): packed training rows when data.packing is on."""
    from datasets import Dataset

    report = prepared.report()
    if cfg.data.packing:
        from tunesmith.data.pack import pack

        packs, report["packing"] = pack(prepared.train, cfg.data.max_length, tokenizer.pad_token_id)
        train_ds = Dataset.from_list([vars(p) for p in packs])
    else:
        train_ds = Dataset.from_list([{"input_ids": r.input_ids, "labels": r.labels} for r in prepared.train])
    eval_ds = Dataset.from_list([{"input_ids": r.input_ids, "labels": r.labels}
                                 for r in prepared.validation]) if prepared.validation else None
    return train_ds, eval_ds, report


# Padded batches this full of real tokens leave packing little to save (see _say_data).
PACKING_PAYS_BELOW = 0.85


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _say_data(cfg, prepared, report: dict, precision: tuple[str, str]) -> None:
    packing = report.get("packing")
    if packing:
        print(f"tunesmith: packed {packing['examples']} rows into {packing['packs']} sequences of "
              f"{cfg.data.max_length} tokens ({packing['efficiency']:.0%} real tokens, against "
              f"{packing['padded_efficiency']:.0%} padded)", flush=True)
        if packing["padded_efficiency"] >= PACKING_PAYS_BELOW and not _cuda():
            # On CPU a pack's attention spans all max_length tokens, which costs more than the padding it
            # saves when rows are alike in length (bench/sft_vs_trl.py: slower on the quickstart rows).
            print(f"tunesmith: note: padded batches are already {packing['padded_efficiency']:.0%} real tokens; on "
                  "CPU packing is likely slower than padding for these rows (data.packing=false)", flush=True)
    s, skipped = prepared.train_stats, prepared.load["train"]["rows"]["skipped"]
    if skipped:
        print(f"tunesmith: skipped bad rows (data.on_error=skip), by reason: {skipped}", flush=True)
    print(f"tunesmith: {s.kept} training rows ({s.dropped_overlong} dropped and {s.truncated} truncated as "
          f"longer than {cfg.data.max_length} tokens), {len(prepared.validation)} validation rows; precision "
          f"{precision[0]} ({precision[1]})", flush=True)
