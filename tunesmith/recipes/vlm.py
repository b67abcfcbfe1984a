"""Vision-language SFT (recipe: vlm): chat rows with images, on a model that transformers loads as
AutoModelForImageTextToText with its AutoProcessor (LLaVA, Idefics3/SmolVLM, Qwen2-VL, ...).

Reads top to bottom: setup -> data -> model -> train -> evaluate -> save. The processor's chat
template renders each conversation; only the assistant replies (and their end-of-turn token)
carry loss, never the image tokens, the prompt or padding (data/vision.py). LoRA adapts the
language model's linear layers; the vision tower stays frozen. What is saved (adapter/ or model/,
plus the processor) loads back with plain transformers and peft.
"""

from __future__ import annotations

import math
from pathlib import Path

from tunesmith import runs
from tunesmith.data.templates import IGNORE_INDEX
from tunesmith.errors import TunesmithError, fail
from tunesmith.recipes import common


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train according to `cfg` (a RunConfig with recipe: vlm); returns the run directory."""
    from transformers import Trainer

    from tunesmith.data import vision
    from tunesmith.models import adapters
    from tunesmith.models.loading import materialize

    # --- setup
    s = common.setup(cfg)
    path = str(materialize(s.source))

    # --- data (before the run directory exists: bad data or images never leave a half-made run behind)
    processor = vision.load_processor(path, cfg.model.trust_remote_code)
    if cfg.model.chat_template:
        processor.chat_template = cfg.model.chat_template
    train_rows, eval_rows, report = _datasets(cfg, common.load_rows(cfg), processor)
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=processor.tokenizer, data_report=report,
                     images={split: {"count": report[split]["images"], "sha256": report[split]["images_sha256"]}
                             for split in ("train", "validation") if report.get(split)})
    if runs.is_main_process():
        t = report["train"]
        print(f"tunesmith: {t['kept']} training rows with {t['images']} images ({t['dropped_overlong']} dropped as "
              f"longer than {cfg.data.max_length} tokens), {len(eval_rows or [])} validation rows; precision "
              f"{s.precision[0]} ({s.precision[1]})", flush=True)

    # --- model
    base_dtype = common.base_dtype(s.precision, cfg.train.method)
    model = _load_model(path, base_dtype, cfg.model.trust_remote_code)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    if cfg.train.method == "full":
        run.manifest["frozen_tensors"] = _freeze_for_full(model, cfg.train.freeze)
    else:
        from peft import get_peft_model

        config = adapters.peft_config("lora", cfg.lora)
        config.target_modules = language_targets(model, cfg.lora.target_modules)
        model = get_peft_model(model, config)
    run.record_model(model, base_dtype=base_dtype, architecture=type(model.get_base_model() if hasattr(
        model, "get_base_model") else model).__name__)

    # --- train
    args = common.training_arguments(cfg.train, run.dir, s.precision[0], cfg.seed, eval_rows is not None,
                                     remove_unused_columns=False)  # the collator builds exactly the model's inputs
    optimizers = (adapters.loraplus_optimizer(model, cfg.train.learning_rate, cfg.lora.plus_ratio,
                                              cfg.train.weight_decay), None) if cfg.lora.plus_ratio else (None, None)
    if s.precision[0] == "bf16" and cfg.train.method != "full":
        adapters.keep_autocast_inputs(model)
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                      data_collator=VisionCollator(processor, cfg.vision), optimizers=optimizers,
                      callbacks=common.callbacks(run.dir, show_progress, callbacks))
    common.early_stopping(trainer, cfg.train)
    final = common.fit(trainer, run.resume_from)

    # --- evaluate
    final.update(stopped_early=bool(cfg.train.early_stopping_patience) and final["steps"] < args.max_steps,
                 best_checkpoint=trainer.state.best_model_checkpoint)
    if eval_rows is not None:
        eval_loss = common.last_eval(trainer)["eval_loss"]
        final.update(eval_loss=eval_loss, eval_perplexity=math.exp(min(eval_loss, 50)))

    # --- save: the weights, and the processor (tokenizer, image processor, chat template) beside them
    out = common.output_dir(cfg, run.dir)
    runs.save_trained(trainer, model, processor, out)
    run.complete(final, out)
    return run.dir


def _datasets(cfg, loaded, processor) -> tuple[list[dict], list[dict] | None, dict]:
    """(training rows, validation rows or None, data report). Every image is opened first and all
    bad ones reported together (data.on_error=skip drops their rows and counts them)."""
    from tunesmith.data import vision

    report: dict = {"load": loaded.info}
    split_rows = []
    for split, examples in (("train", loaded.train), ("validation", loaded.validation)):
        if not examples:
            split_rows.append(None)
            continue
        checked = vision.check_images(examples, cfg.vision, cfg.config_path)
        if cfg.data.on_error == "fail":
            checked.raise_if_errors()
        rows, stats, problems = vision.tokenize_rows(processor, checked.rows, cfg.vision, cfg.data.max_length,
                                                     cfg.data.train_on)
        if problems:
            raise TunesmithError(problems[:50], title=f"{len(problems)} {split} rows could not be tokenized:")
        report[split] = {**stats.summary(), "images": checked.images, "images_sha256": checked.sha256,
                         "rows_with_bad_images": len({(p.file, p.line) for p in checked.problems})}
        split_rows.append(rows or None)  # validation rows all dropped: no evaluation, as in the sft recipe
    if not split_rows[0]:
        t = report.get("train", {})
        raise fail(f"no training rows left ({t.get('dropped_overlong', 0)} longer than max_length="
                   f"{cfg.data.max_length} with their image tokens, {t.get('dropped_no_loss', 0)} with no trained "
                   "token)", "raise data.max_length (each image takes the model's image tokens)",
                   field="data.max_length")
    return split_rows[0], split_rows[1], report


def _load_model(path: str, dtype: str, trust_remote_code: bool):
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        return AutoModelForImageTextToText.from_pretrained(path, dtype=getattr(torch, dtype),
                                                           trust_remote_code=trust_remote_code)
    except ValueError as e:  # transformers: "Unrecognized configuration class ... for AutoModelForImageTextToText"
        raise fail(f"{path} is not a vision-language model transformers can load ({str(e).splitlines()[0]})",
                   "name an image-text-to-text model (LLaVA, SmolVLM, Qwen2-VL, ...), or use recipe: sft",
                   field="model.name") from None


def language_targets(model, names: list[str]) -> list[str]:
    """Full names of the linear layers LoRA adapts. all-linear: every linear layer of the language
    model (not the output head, the vision tower or the projector). Plain names (q_proj, v_proj)
    are looked up inside the language model only, since vision towers reuse them; dotted names
    (multi_modal_projector.linear_1) anywhere, to adapt other parts on purpose."""
    import torch.nn as nn

    decoder = model.get_decoder()
    prefix = next(n for n, m in model.named_modules() if m is decoder) + "."
    plain = {n for n in names if "." not in n}
    dotted = [n for n in names if "." in n]
    out = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        leaf = name.rpartition(".")[2]
        inside = name.startswith(prefix) and ("all-linear" in plain or leaf in plain)
        if inside or any(name == d or name.endswith("." + d) for d in dotted):
            out.append(name)
    if not out:
        raise fail(f"lora.target_modules {names} names no linear layer of the language model {prefix[:-1]}",
                   "use all-linear, or names such as q_proj, v_proj", field="lora.target_modules")
    return out


def _freeze_for_full(model, patterns: list[str]) -> int:
    """Full fine-tuning trains the language model and its output head; the vision tower and the
    projector stay frozen (as in LLaVA's instruction stage), as does whatever train.freeze names.
    Returns how many tensors were frozen."""
    decoder = model.get_decoder()
    trained = {id(p) for p in decoder.parameters()} | {id(p) for p in model.get_output_embeddings().parameters()}
    n = 0
    for name, param in model.named_parameters():
        if id(param) not in trained or any(pat in name for pat in patterns):
            param.requires_grad_(False)
            n += 1
    return n


class VisionCollator:
    """Opens a batch's images, runs the processor on the batch (pixel values and whatever else the
    model takes: image sizes, grids, masks), and lays the prepared labels over the right-padded ids.
    The ids are checked against the prepared ones, so labels can never drift from their tokens."""

    def __init__(self, processor, vision):
        self.processor, self.vision = processor, vision

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        from tunesmith.data.vision import open_image, processor_messages

        texts = [self.processor.apply_chat_template(processor_messages(r["messages"]), tokenize=False)
                 for r in rows]
        images = [[open_image(ref, Path(r["root"]), self.vision.max_image_bytes, self.vision.image_size)
                   for ref in r["images"]] for r in rows]
        batch = self.processor(text=texts, images=images if any(images) else None, padding=True,
                               return_tensors="pt", add_special_tokens=False)
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            if batch["input_ids"][i, :n].tolist() != r["input_ids"]:
                raise RuntimeError(f"{r['file']}:{r['line']}: the processor gave other token ids than at "
                                   "preparation (a non-deterministic processor?)")
            labels[i, :n] = torch.tensor(r["labels"])
        return {**batch, "labels": labels}

