"""Text classification with a classification head (AutoModelForSequenceClassification).

Reads top to bottom: setup -> data -> model -> train -> evaluate -> save. Rows are
classification records (`text`, `label`); labels are class names or integer ids. Evaluation
reports accuracy and macro precision, recall and F1 on the validation rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail
from tunesmith.recipes import common


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
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    from tunesmith.models.loading import materialize

    # --- setup
    s = common.setup(cfg)

    # --- data
    loaded = common.load_rows(cfg)
    labels = label_map(loaded.train)
    unseen = sorted({str(e.extra["label"]) for e in loaded.validation} - {str(x) for x in labels})
    if unseen:
        raise fail(f"validation labels never seen in training: {', '.join(unseen)}", "add training rows for them",
                   field="data.validation")
    folder = materialize(s.source)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.model.trust_remote_code)
    train_ds = _encode(loaded.train, tokenizer, labels, cfg.data.max_length)
    eval_ds = _encode(loaded.validation, tokenizer, labels, cfg.data.max_length) if loaded.validation else None
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer, labels=labels,
                     data_report={"load": loaded.info, "train_rows": len(train_ds),
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
    run.record_model(model)

    # --- train
    def compute_metrics(pred):
        return classification_metrics(np.argmax(pred.predictions, -1).tolist(), pred.label_ids.tolist(), len(labels))

    args = common.training_arguments(cfg.train, run.dir, s.precision[0], cfg.seed, eval_ds is not None,
                                     remove_unused_columns=False)
    args.include_num_input_tokens_seen = "all"
    if cfg.train.early_stopping_patience:  # the best checkpoint is the most accurate one
        args.metric_for_best_model, args.greater_is_better = "accuracy", True
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                      callbacks=common.callbacks(run.dir, show_progress, callbacks))
    common.early_stopping(trainer, cfg.train)
    final = common.fit(trainer, run.resume_from)
    final.update(best_checkpoint=trainer.state.best_model_checkpoint)

    # --- evaluate
    if eval_ds is not None:
        metrics = trainer.evaluate()
        final.update({k if k == "eval_loss" else k.removeprefix("eval_"): v for k, v in metrics.items()
                      if k in ("eval_loss", "eval_accuracy", "eval_precision_macro", "eval_recall_macro",
                               "eval_f1_macro")})

    # --- save
    out = common.output_dir(cfg, run.dir)
    runs.save_trained(trainer, model, tokenizer, out)
    if runs.is_main_process():
        (out / "labels.json").write_text(json.dumps(names))
    run.complete(final, out)
    return run.dir


def _encode(examples, tokenizer, labels: list, max_length: int):
    """Tokenized text with each row's class id (the label's index in `labels`)."""
    from datasets import Dataset

    index = {x: i for i, x in enumerate(labels)}
    enc = tokenizer([e.extra["text"] for e in examples], truncation=True, max_length=max_length)
    return Dataset.from_dict({**enc, "labels": [index[e.extra["label"]] for e in examples]})
