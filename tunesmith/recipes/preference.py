"""Preference alignment through trl: DPO (and its loss variants), KTO, ORPO, SimPO, and reward models.

Reads top to bottom: setup -> data -> model -> train -> save. DPO rows are preference records
(prompt, chosen, rejected as conversations), KTO rows unpaired (prompt, completion, label); trl
applies the chat template and computes the loss. With LoRA the reference model is the base with
the adapter disabled (no second copy). ORPO (odds-ratio penalty added to the SFT loss) and SimPO
(length-normalised margin, trl's CPOTrainer with loss_type=simpo and no BC term) need no
reference. A reward model is the base with a one-output score head
(AutoModelForSequenceClassification), trained on the same pairs with trl's RewardTrainer.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith import runs
from tunesmith.recipes import common


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
    from tunesmith.data.templates import require_template
    from tunesmith.hardware import training_attention
    from tunesmith.models.loading import load_tokenizer

    # --- setup
    s = common.setup(cfg)
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    require_template(tokenizer)

    # --- data
    loaded = common.load_rows(cfg)
    train_ds = _rows(cfg.recipe, loaded.train)
    eval_ds = _rows(cfg.recipe, loaded.validation) if loaded.validation else None
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer,
                     data_report={"load": loaded.info, "train_rows": len(train_ds),
                                  "validation_rows": len(loaded.validation)})

    # --- model
    attention = training_attention(cfg.model.attention, cfg.data.max_length)
    model = _model(cfg, s.source, tokenizer, attention)
    peft_config = None
    if cfg.train.method != "full":
        from tunesmith.models import adapters

        task = "SEQ_CLS" if cfg.recipe == "reward" else "CAUSAL_LM"
        peft_config = adapters.peft_config(cfg.train.method, cfg.lora, task=task)

    # --- train
    config_cls, trainer_cls, specific = _trainer_for(cfg.recipe, cfg.preference)
    args = common.training_arguments(cfg.train, run.dir, s.precision[0], cfg.seed, eval_ds is not None, config_cls,
                                     max_length=cfg.data.max_length, **specific)
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                          processing_class=tokenizer, peft_config=peft_config,
                          callbacks=common.callbacks(run.dir, show_progress, callbacks))
    run.record_model(trainer.model, attention=attention)  # with the adapter trl attached
    final = common.fit(trainer, run.resume_from)

    # --- evaluate
    logged = [h for h in trainer.state.log_history if "loss" in h]
    final.update({k.replace("/", "_"): v for k, v in (logged[-1] if logged else {}).items()
                  if k.startswith(("rewards/", "accuracy", "margin"))})
    if eval_ds is not None:  # held-out pairs: reward accuracy and margins (DPO), pairwise accuracy (reward)
        final.update({k.replace("/", "_"): v for k, v in common.last_eval(trainer).items()
                      if isinstance(v, (int, float)) and not k.endswith(("_runtime", "_per_second", "epoch", "step"))})

    # --- save
    out = common.output_dir(cfg, run.dir)
    runs.save_trained(trainer, trainer.model, tokenizer, out)
    run.complete(final, out)
    return run.dir


def _rows(recipe: str, examples):
    """KTO rows are unpaired (prompt, completion, label); the others are pairs."""
    from datasets import Dataset

    if recipe == "kto":
        return Dataset.from_list([{"prompt": e.messages, "completion": e.extra["completion"],
                                   "label": e.extra["label"]} for e in examples])
    return Dataset.from_list([{"prompt": e.messages, "chosen": e.extra["chosen"], "rejected": e.extra["rejected"]}
                              for e in examples])


def _model(cfg, source, tokenizer, attention: str):
    """The policy (a causal LM), or for a reward model the base with a one-output score head."""
    if cfg.recipe == "reward":
        from transformers import AutoModelForSequenceClassification

        from tunesmith.models.loading import materialize

        model = AutoModelForSequenceClassification.from_pretrained(
            materialize(source), num_labels=1, attn_implementation=attention,
            trust_remote_code=cfg.model.trust_remote_code)
        model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    else:
        from tunesmith.models.loading import load_model

        model = load_model(source, cfg.model.trust_remote_code, attention=attention,
                           quantization=cfg.model.quantization)
    model.config.use_cache = False
    return model
