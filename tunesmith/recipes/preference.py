"""Preference alignment through trl: DPO (and its loss variants), KTO, ORPO, SimPO, and reward models.

Reads top to bottom: setup -> data -> model -> train -> save. DPO rows are preference records
(prompt, chosen, rejected as conversations), KTO rows unpaired (prompt, completion, label); trl
applies the chat template and computes the loss. With LoRA the reference model is the base with
the adapter disabled (no second copy). ORPO (odds-ratio penalty added to the SFT loss) and SimPO
(length-normalised margin, trl's CPOTrainer with loss_type=simpo and no BC term) need no reference. A reward model is the base with a one-output score head
(AutoModelForSequenceClassification), trained on the same pairs with trl's RewardTrainer.
"""

from __future__ import annotations

import time
from pathlib import Path

from tunesmith import runs


def _trainer_for(recipe: str, p) -> tuple[type, type, dict]:
    """(trl config class, trainer class, recipe-specific arguments) for a preference recipe."""
    if recipe == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOConfig, KTOTrainer, dict(desirable_weight=p.desirable_weight,
                                           undesirable_weight=p.undesirable_weight, beta=p.beta)
    if recipe == "reward":
        from trl import RewardConfig, RewardTrainer

        return RewardConfig, RewardTrainer, {}
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # chosen knowingly: ORPO/CPO live there in trl 1.x
    if recipe == "orpo":  # trl keeps ORPO in trl.experimental; its beta is the paper's lambda
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOConfig, ORPOTrainer, dict(beta=p.beta)
    if recipe == "simpo":  # SimPO = CPO's loss with the simpo margin and the BC term off (cpo_alpha=0)
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        return CPOConfig, CPOTrainer, dict(loss_type="simpo", cpo_alpha=0.0, beta=p.beta, simpo_gamma=p.simpo_gamma,
                                           label_smoothing=p.label_smoothing)
    from trl import DPOConfig, DPOTrainer

    return DPOConfig, DPOTrainer, dict(loss_type=[p.loss], label_smoothing=p.label_smoothing, beta=p.beta)


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train a preference recipe (dpo, kto, orpo, simpo, reward) according to `cfg`; returns the run directory."""
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed

    from tunesmith.config import dump_yaml
    from tunesmith.data.prepare import check_kinds, data_files, load_all
    from tunesmith.data.templates import require_template
    from tunesmith.hardware import resolve_precision, thread_rechecks, training_attention, use_threads
    from tunesmith.models.loading import load_model, load_tokenizer, resolve
    from tunesmith.recipes.sft import _make_logger_callback, _training_arguments

    # --- setup
    set_seed(cfg.seed)
    precision = resolve_precision(cfg.train.precision)
    use_threads(cfg.train.threads)
    source = resolve(cfg.model.name, cfg.model.gguf_file)
    tokenizer = load_tokenizer(source, cfg.model.chat_template, cfg.model.trust_remote_code)
    require_template(tokenizer)

    # --- data
    loaded = load_all(cfg.data, cfg.seed)
    kto = cfg.recipe == "kto"
    check_kinds(loaded.train + loaded.validation, ("kto",) if kto else ("preference",))  # dpo and reward: pairs

    def rows(examples):
        if kto:
            return Dataset.from_list([{"prompt": e.messages, "completion": e.extra["completion"],
                                       "label": e.extra["label"]} for e in examples])
        return Dataset.from_list([{"prompt": e.messages, "chosen": e.extra["chosen"], "rejected": e.extra["rejected"]}
                                  for e in examples])

    train_ds = rows(loaded.train)
    eval_ds = rows(loaded.validation) if loaded.validation else None
    run_dir, resume_from = runs.prepare_run_dir(cfg)
    writer = runs.is_main_process()  # under accelerate launch only the main process writes the run directory
    if writer:
        (run_dir / runs.CONFIG_FILE).write_text(dump_yaml(cfg))
    manifest = runs.build_manifest(cfg, data_files=data_files(cfg.data), model_source=source, precision=precision)
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
    runs.write_json(run_dir / "data_report.json", {"load": loaded.info, "train_rows": len(train_ds),
                                                   "validation_rows": len(loaded.validation)})

    # --- model
    attention = training_attention(cfg.model.attention, cfg.data.max_length)
    reward = cfg.recipe == "reward"
    if reward:
        from transformers import AutoModelForSequenceClassification

        from tunesmith.models.loading import materialize

        model = AutoModelForSequenceClassification.from_pretrained(
            materialize(source), num_labels=1, attn_implementation=attention,
            trust_remote_code=cfg.model.trust_remote_code)
        model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    else:
        model = load_model(source, cfg.model.trust_remote_code, attention=attention,
                           quantization=cfg.model.quantization)
    model.config.use_cache = False
    peft_config = None
    if cfg.train.method != "full":
        from tunesmith.models import adapters

        peft_config = adapters.peft_config(cfg.train.method, cfg.lora, task="SEQ_CLS" if reward else "CAUSAL_LM")

    # --- train
    config_cls, trainer_cls, specific = _trainer_for(cfg.recipe, cfg.preference)
    args = _training_arguments(cfg.train, run_dir, precision[0], cfg.seed, eval_ds is not None, config_cls,
                               max_length=cfg.data.max_length, **specific)
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                          processing_class=tokenizer, peft_config=peft_config,
                          callbacks=[_make_logger_callback(run_dir, show_progress), thread_rechecks(), *callbacks])
    trainer.remove_callback(PrinterCallback)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - t0

    # --- evaluate
    logged = [h for h in trainer.state.log_history if "loss" in h]
    final = {"train_loss": result.training_loss, "steps": trainer.state.global_step,
             "train_seconds": round(seconds, 1),
             **{k.replace("/", "_"): v for k, v in (logged[-1] if logged else {}).items()
                if k.startswith(("rewards/", "accuracy", "margin"))}}
    if eval_ds is not None:  # held-out pairs: reward accuracy and margins (DPO), pairwise accuracy (reward)
        done = [h for h in trainer.state.log_history if "eval_loss" in h and h.get("step") == trainer.state.global_step]
        metrics = done[-1] if done else trainer.evaluate()
        final.update({k.replace("/", "_"): v for k, v in metrics.items()
                      if isinstance(v, (int, float)) and not k.endswith(("_runtime", "_per_second", "epoch", "step"))})

    # --- save
    out = run_dir / ("model" if cfg.train.method == "full" else "adapter")
    runs.save_trained(trainer, trainer.model, tokenizer, out)
    runs.complete(run_dir, manifest, final, resume_from, out)
    return run_dir
