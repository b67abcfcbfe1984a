"""GRPO (recipe: grpo) through trl's GRPOTrainer.

Samples rl.num_generations completions per prompt, scores them with Python reward functions (and
optionally a reward model), and pushes each completion's log-probabilities by its reward relative
to its group; trl does all of it. With LoRA the KL reference is the base with the adapter disabled
(trl does this when it is given a peft_config).

Reads top to bottom: setup -> data -> model -> train -> evaluate -> save.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith import runs
from tunesmith.errors import fail
from tunesmith.recipes import common, prompts, rewards


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train with GRPO according to `cfg` (recipe: grpo); returns the run directory."""
    rewards.check(cfg)  # before the heavy imports: a mistyped reward function is reported at once
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from tunesmith.data.templates import require_template
    from tunesmith.hardware import training_attention
    from tunesmith.models.loading import load_model, load_tokenizer

    # --- setup
    s = common.setup(cfg)
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    require_template(tokenizer)

    # --- data and rewards
    train_rows, val_rows, report = prompts.load(cfg, tokenizer)
    reward_funcs = rewards.load_reward_functions(cfg.rl.reward_functions, cfg.config_path)
    rewards.check_reward_columns(reward_funcs, cfg.rl.reward_functions, set(train_rows[0]) - {"prompt"})
    reward_tokenizers = [None] * len(reward_funcs)
    if cfg.rl.reward_model:  # trl scores prompt + completion with it, rendered by its own chat template
        path = rewards.resolve_reward_model(cfg.rl.reward_model, cfg.config_path)
        reward_model, reward_tokenizer = rewards.load_reward_model(path)
        reward_funcs.append(reward_model)
        reward_tokenizers.append(reward_tokenizer)
    if val_rows and cfg.train.batch_size % cfg.rl.num_generations:
        raise fail(f"evaluation generates groups of {cfg.rl.num_generations} within one batch of "
                   f"train.batch_size = {cfg.train.batch_size}",
                   f"make train.batch_size a multiple of {cfg.rl.num_generations}, or drop the validation data",
                   field="train.batch_size")
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(val_rows) if val_rows else None
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer, data_report=report)

    # --- model
    base_dtype = common.base_dtype(s.precision, cfg.train.method)
    attention = training_attention(cfg.model.attention, cfg.data.max_length)
    model = load_model(s.source, cfg.model.trust_remote_code, dtype=base_dtype, attention=attention,
                       quantization=cfg.model.quantization)
    peft_config = None
    if cfg.train.method != "full":
        from tunesmith.models import adapters

        peft_config = adapters.peft_config(cfg.train.method, cfg.lora)

    # --- train
    r = cfg.rl
    # batch_size counts completions (trl's per_device_train_batch_size): a step samples
    # batch_size x grad_accum completions, i.e. that / num_generations prompts.
    args = common.training_arguments(cfg.train, run.dir, s.precision[0], cfg.seed, eval_ds is not None, GRPOConfig,
                                     num_generations=r.num_generations, max_completion_length=r.max_new_tokens,
                                     temperature=r.temperature, beta=r.kl_coef, epsilon=r.clip_range,
                                     use_vllm=False,
                                     # Dropout off (as in PPO): the KL to the reference and the
                                     # importance ratios then compare the same function.
                                     disable_dropout=True)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_ds,
                          eval_dataset=eval_ds, processing_class=tokenizer,
                          reward_processing_classes=reward_tokenizers, peft_config=peft_config,
                          callbacks=common.callbacks(run.dir, show_progress, callbacks))
    run.record_model(trainer.model, base_dtype=base_dtype, attention=attention)  # with trl's adapter
    final = common.fit(trainer, run.resume_from)

    # --- evaluate
    logged = [h for h in trainer.state.log_history if "reward" in h]
    final.update(reward_first=logged[0]["reward"] if logged else None,
                 reward_last=logged[-1]["reward"] if logged else None,
                 kl_last=logged[-1].get("kl") if logged else None,
                 completion_length_last=logged[-1].get("completions/mean_length") if logged else None)
    if eval_ds is not None:
        final["eval_reward"] = trainer.evaluate().get("eval_reward")

    # --- save
    out = common.output_dir(cfg, run.dir)
    runs.save_trained(trainer, trainer.model, tokenizer, out)
    run.complete(final, out)
    return run.dir
