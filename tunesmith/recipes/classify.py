"""Text classification with a classification head (AutoModelForSequenceClassification).

Reads top to bottom: setup -> data -> model -> train -> evaluate -> save. Rows are
classification records (`text`, `label`); labels are class names or integer ids. Evaluation
reports accuracy and macro precision, recall and F1 on the validation rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail


def classification_metrics(pred: list[int], gold: list[int], num_labels: int) -> dict:
    """Accuracy and macro precision / recall / F1 (a class never predicted has precision 0)."""
    n = len(gold)
    acc = sum(p == g for p, g in zip(pred, gold)) / n if n else 0.0
    precisions, recalls, f1s = [], [], []
    for c in range(num_labels):
        tp = sum(p == c and g == c for p, g in zip(pred, gold))
        fp = sum(p == c and g != c for p, g in zip(pred, gold))
        fn = sum(p != c and g == c for p, g in zip(pred, gold))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(prec)
        recalls.append(rec)
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return {"accuracy": acc, "precision_macro": mean(precisions), "recall_macro": mean(recalls),
            "f1_macro": mean(f1s)}


def label_map(examples) -> list:
    """Sorted distinct labels (integers in numeric order, names alphabetically); index = class id."""
    labels = {e.extra["label"] for e in examples}
    if len({type(x) for x in labels}) > 1:
        raise fail("labels mix numbers and names", "use one kind of label", field="label")
    return sorted(labels)


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train a classifier according to `cfg` (recipe: classify); returns the run directory."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        set_seed,
    )

    from tunesmith.config import dump_yaml
    from tunesmith.data.prepare import check_kinds, data_files, load_all
    from tunesmith.hardware import resolve_precision, thread_rechecks, use_threads
    from tunesmith.models.loading import materialize, resolve
    from tunesmith.recipes.sft import _make_logger_callback, _training_arguments

    # --- setup
    set_seed(cfg.seed)
    precision = resolve_precision(cfg.train.precision)
    use_threads(cfg.train.threads)
    source = resolve(cfg.model.name, cfg.model.gguf_file)

    # --- data
    loaded = load_all(cfg.data, cfg.seed)
    check_kinds(loaded.train + loaded.validation, ("classification",))
    labels = label_map(loaded.train)
    unseen = sorted({str(e.extra["label"]) for e in loaded.validation} - {str(x) for x in labels})
    if unseen:
        raise fail(f"validation labels never seen in training: {', '.join(unseen)}", "add training rows for them",
                   field="data.validation")
    index = {x: i for i, x in enumerate(labels)}
    folder = materialize(source)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.model.trust_remote_code)

    def encode(examples):
        enc = tokenizer([e.extra["text"] for e in examples], truncation=True, max_length=cfg.data.max_length)
        return Dataset.from_dict({**enc, "labels": [index[e.extra["label"]] for e in examples]})

    train_ds = encode(loaded.train)
    eval_ds = encode(loaded.validation) if loaded.validation else None
    run_dir, resume_from = runs.prepare_run_dir(cfg)
    writer = runs.is_main_process()  # under accelerate launch only the main process writes the run directory
    if writer:
        (run_dir / runs.CONFIG_FILE).write_text(dump_yaml(cfg))
    manifest = runs.build_manifest(cfg, data_files=data_files(cfg.data), model_source=source, precision=precision)
    manifest["labels"] = labels
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
    runs.write_json(run_dir / "data_report.json", {"load": loaded.info, "train_rows": len(train_ds),
                                                   "validation_rows": len(loaded.validation), "labels": labels})

    # --- model
    names = [str(x) for x in labels]
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        trust_remote_code=cfg.model.trust_remote_code)
    if cfg.train.method != "full":
        from tunesmith.models import adapters

        # peft's SEQ_CLS task trains the new head in full (modules_to_save): it starts random.
        model = adapters.apply(model, cfg.train.method, cfg.lora, task="SEQ_CLS")
    manifest["parameters"] = {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                              "total": sum(p.numel() for p in model.parameters())}

    # --- train
    def compute_metrics(pred):
        return classification_metrics(np.argmax(pred.predictions, -1).tolist(), pred.label_ids.tolist(), len(labels))

    args = _training_arguments(cfg.train, run_dir, precision[0], cfg.seed, eval_ds is not None,
                               remove_unused_columns=False)
    args.include_num_input_tokens_seen = "all"
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                      callbacks=[_make_logger_callback(run_dir, show_progress), thread_rechecks(), *callbacks])
    trainer.remove_callback(PrinterCallback)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - t0

    # --- evaluate
    tokens = trainer.state.num_input_tokens_seen
    final = {"train_loss": result.training_loss, "steps": trainer.state.global_step, "train_seconds": round(seconds, 1),
             "tokens_seen": tokens, "tokens_per_s": round(tokens / seconds, 1) if seconds else None}
    if eval_ds is not None:
        metrics = trainer.evaluate()
        final.update({k if k == "eval_loss" else k.removeprefix("eval_"): v for k, v in metrics.items()
                      if k in ("eval_loss", "eval_accuracy", "eval_precision_macro", "eval_recall_macro",
                               "eval_f1_macro")})

    # --- save
    out = run_dir / ("model" if cfg.train.method == "full" else "adapter")
    runs.save_trained(trainer, model, tokenizer, out)
    if writer:
        (out / "labels.json").write_text(json.dumps(names))
    runs.complete(run_dir, manifest, final, resume_from, out)
    return run_dir
