"""Differentially private LoRA SFT: DP-SGD through opacus (per-sample clipping plus Gaussian noise).

Reads top to bottom like sft.py: setup -> data -> model -> train -> evaluate -> save, and reuses its
pieces (prepared rows, PadCollator, the run directory, the manifest, peft LoRA). The loop is plain
PyTorch instead of transformers' Trainer: opacus must own the optimizer (a DPOptimizer that clips
each example's gradient and adds noise) and the data loader (Poisson sampling, which the privacy
accounting assumes), and Trainer builds both itself and accumulates gradients in its own way, so
the two cannot be joined without patching Trainer's internals.

What is private: the released adapter, with (epsilon, delta) from the accountant. What is not: the
training and validation losses in metrics.jsonl (computed without noise, for the operator's eyes),
and the validation rows themselves (they never touch the gradients).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

from tunesmith import runs
from tunesmith.data.templates import IGNORE_INDEX
from tunesmith.errors import fail
from tunesmith.models import adapters
from tunesmith.recipes import common
from tunesmith.recipes.common import PadCollator

# RDP (Renyi DP, Mironov 2017): an upper bound on epsilon, the classic DP-SGD accountant, and cheap
# (measured here: ~0.05-0.2 s per epsilon, ~1-3 s to search a noise level). PRV is tighter (about 7%
# less noise for the same epsilon in our measurements) but took ~0.4-0.8 s per epsilon and 4-8 s per
# search on 2 cores, and we compute epsilon at every logging step.
ACCOUNTANT = "rdp"
# opacus's default: per-layer hooks with a hand-written per-sample gradient for nn.Linear, which is
# all LoRA trains (lora_A and lora_B are nn.Linear; the frozen base, embeddings and rotary
# embeddings never get hooks). "ew" cannot run these models: its forward takes one positional input,
# not input_ids=/attention_mask= keywords.
GRAD_SAMPLE_MODE = "hooks"


def example_losses(logits, labels):
    """Each example's mean next-token loss over its own trained tokens, shape (batch,).

    DP-SGD clips every example's gradient, so an example's loss must depend on that example only.
    transformers' built-in loss averages over all tokens of the batch, which would weight each
    example by its share of the batch's tokens; here each row is averaged over its own tokens and
    the batch loss is then the mean over rows (opacus, told loss_reduction="mean", multiplies the
    backpropagated signal by the batch size, so each per-sample gradient is exactly the gradient of
    that row's own loss; padding, labelled IGNORE_INDEX, adds nothing).
    """
    import torch.nn.functional as F

    logits, labels = logits[:, :-1].float(), labels[:, 1:]  # token t predicts token t+1
    token = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                            reduction="none").view(labels.shape)
    counts = (labels != IGNORE_INDEX).sum(1).clamp(min=1)  # prepared rows always have a trained token
    return token.sum(1) / counts


def make_private(model, optimizer, loader, *, noise_multiplier: float | None, target_epsilon: float, delta: float,
                 max_grad_norm: float, steps: int, noise_generator=None):
    """Hand model, optimizer and loader to opacus. Returns (engine, hooks, dp_optimizer, dp_loader,
    noise_multiplier): the model itself stays a plain peft model with per-sample gradient hooks
    (`hooks.cleanup()` removes them), so it saves and evaluates as usual.

    The loader's batch size is the expected (logical) batch: Poisson sampling draws every row with
    probability 1 / len(loader) per step. With noise_multiplier None the noise is searched so that
    `steps` such steps spend target_epsilon; opacus's make_private_with_epsilon does the same search
    but only for a whole number of epochs, and train.max_steps counts steps.
    """
    from opacus import PrivacyEngine
    from opacus.accountants.utils import get_noise_multiplier

    engine = PrivacyEngine(accountant=ACCOUNTANT)
    if noise_multiplier is None:
        try:
            noise_multiplier = get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                                    sample_rate=1 / len(loader), steps=steps, accountant=ACCOUNTANT)
        except ValueError:  # opacus gives up above a noise multiplier of 1e6
            raise fail(f"target_epsilon={target_epsilon} at delta={delta} cannot be reached in {steps} steps at "
                       f"sample rate {1 / len(loader):.4g} with any usable noise",
                       "raise privacy.target_epsilon, or train fewer steps", field="privacy.target_epsilon") from None
    # wrap_model=False: hooks on the model itself instead of a GradSampleModule wrapper, the mode
    # opacus recommends for transformers models (their __getattr__ and keyword-only forwards).
    hooks, dp_optimizer, dp_loader = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm, loss_reduction="mean", poisson_sampling=True, grad_sample_mode=GRAD_SAMPLE_MODE,
        wrap_model=False, noise_generator=noise_generator)
    # opacus stands in for an empty Poisson draw with an empty batch shaped like the first batch it
    # collated; when the very first draw is empty it guesses the shape from dataset[0], which fails
    # on rows that are dicts of lists. Show it one batch's structure up front (only the keys, dtypes
    # and trailing shapes are used: every tensor of the stand-in has 0 rows).
    dp_loader.collate_fn.first_batch = loader.collate_fn([loader.dataset[0]])
    return engine, hooks, dp_optimizer, dp_loader, noise_multiplier


def check_supported(model) -> None:
    """Refuse trainable parameters opacus cannot give per-sample gradients here. The config-only
    refusals (gradient checkpointing, early stopping, DoRA, packing) are config checks."""
    import torch.nn as nn

    # opacus computes per-sample gradients with a formula for nn.Linear; other trainable modules
    # (DoRA's magnitude vector, LoRA on embeddings) would fall back to functorch, untested here.
    odd = sorted({name.rsplit(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad
                  and not isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.Linear)})
    if odd:
        raise fail(f"trainable parameters outside LoRA's linear layers: {', '.join(odd[:3])}"
                   + (f" and {len(odd) - 3} more" if len(odd) > 3 else ""),
                   "use plain LoRA: lora.use_dora=false, and target_modules naming linear layers (or all-linear)",
                   field="lora")


def refuse(cfg) -> None:
    """What this run cannot do whatever its config says, checked before any model loads (and by
    `tunesmith validate`): several processes, and resuming an unfinished DP run.

    DP runs are not resumable: the accountant's history, the Poisson sampler's and the noise's
    random states are not checkpointed, and restarting would silently spend a second budget on top
    of the first. An unfinished DP run directory therefore needs overwrite=true."""
    from tunesmith.errors import Collector

    errors = Collector(title="privacy.enabled: not available with DP-SGD:")
    if runs.world_size() > 1:
        errors.add("several processes: the DP loop runs on one device (distributed DP-SGD needs opacus's "
                   "DPDDP and a shared accountant)", "run `tunesmith train` without accelerate launch / torchrun")
    run_dir = runs.run_dir_for(cfg)
    manifest = runs.read_manifest(run_dir)
    if manifest and manifest.get("status") != "completed" and not cfg.overwrite:
        errors.add(f"run directory {run_dir} holds an unfinished run; a DP-SGD run cannot be resumed (its privacy "
                   "accountant and sampler state are not checkpointed)",
                   "start it over with overwrite=true (the budget of the interrupted attempt counts if anything "
                   "from it was released), or pick another name", field="name")
    errors.raise_if_any()


def _emit(callbacks, event: str, state, control, **kw) -> None:
    """Call transformers TrainerCallbacks (e.g. a sweep's pruning hook) from this loop. There are no
    TrainingArguments here, so `args` is None."""
    for cb in callbacks:
        getattr(cb, event)(None, state, control, **kw)


def evaluate(model, loader, device) -> float:
    """Token-weighted mean validation loss (comparable to the sft recipe's eval_loss)."""
    import torch

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            n = (batch["labels"][:, 1:] != IGNORE_INDEX).sum(1)
            total += float((example_losses(logits, batch["labels"]) * n).sum())
            tokens += int(n.sum())
    model.train(was_training)
    return total / max(tokens, 1)


def run(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train LoRA SFT with DP-SGD according to `cfg` (privacy.enabled); returns the run directory."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import TrainerControl, TrainerState, get_scheduler

    from tunesmith.data.prepare import prepare
    from tunesmith.hardware import thread_rechecks, training_attention
    from tunesmith.models.loading import load_model, load_tokenizer

    # --- setup
    s = common.setup(cfg)
    t, pv = cfg.train, cfg.privacy
    refuse(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # --- data (before the run directory exists: bad data never leaves a half-made run behind)
    tokenizer = load_tokenizer(s.source, cfg.model.chat_template, cfg.model.trust_remote_code)
    # the rows SFT trains on (and the audit's canaries: DP-SGD should keep their exposure low)
    prepared = prepare(cfg.data, tokenizer, cfg.seed, common.kinds(cfg), extra=common.canary_rows(cfg))
    train_rows = [{"input_ids": r.input_ids, "labels": r.labels} for r in prepared.train]
    eval_rows = [{"input_ids": r.input_ids, "labels": r.labels} for r in prepared.validation]
    collator = PadCollator(tokenizer.pad_token_id)
    # The expected (logical) batch is batch_size x grad_accum rows; opacus turns this loader into a
    # Poisson sampler with rate 1 / len(loader), and BatchMemoryManager below splits each drawn batch
    # into physical batches of at most batch_size rows (Poisson batches vary in size, so this also
    # caps memory when grad_accum is 1).
    loader = DataLoader(train_rows, batch_size=t.batch_size * t.grad_accum, collate_fn=collator)
    per_epoch = len(loader)
    steps = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * per_epoch))
    if len(train_rows) * pv.delta >= 1:
        print(f"tunesmith: warning: privacy.delta={pv.delta} is not below 1 / {len(train_rows)} training rows; "
              "such a delta allows leaking a whole row", flush=True)

    # --- model
    # As in sft.py: LoRA never updates the base, so under bf16 it is stored in bf16; peft keeps the
    # adapter in fp32, and opacus clips and noises fp32 per-sample gradients.
    base_dtype = common.base_dtype(s.precision, "lora")
    attention = training_attention(cfg.model.attention, cfg.data.max_length)
    model = load_model(s.source, cfg.model.trust_remote_code, dtype=base_dtype, attention=attention,
                       quantization=cfg.model.quantization, rope=common.rope(cfg))
    model.config.use_cache = False
    if cfg.model.quantization == "none":  # a quantized base is placed by its device_map already
        model.to(device)
    model = adapters.apply(model, "lora", cfg.lora)  # peft creates the adapter beside each base layer
    check_supported(model)  # before the run directory exists, so a refused run leaves nothing behind

    # --- run directory (after the model: an unfinished DP run directory can only be started over)
    run = runs.start(cfg, source=s.source, precision=s.precision, tokenizer=tokenizer,
                     data_report=prepared.report(), **common.canary_fields(cfg))  # DP runs write no checkpoint
    run.record_model(model, base_dtype=base_dtype, attention=attention)
    run_dir = run.dir
    print(f"tunesmith: DP-SGD on {len(train_rows)} training rows, {len(eval_rows)} validation rows; {steps} steps "
          f"of expected batch {t.batch_size * t.grad_accum} (sample rate {1 / per_epoch:.4g}); no checkpoints "
          "(DP runs are not resumable)", flush=True)

    # --- train
    if cfg.lora.plus_ratio:  # LoRA+ is only parameter groups with their own learning rates
        optimizer = adapters.loraplus_optimizer(model, t.learning_rate, cfg.lora.plus_ratio, t.weight_decay)
    else:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.learning_rate,
                                      weight_decay=t.weight_decay)
    # train.max_grad_norm is not applied on top: privacy.max_grad_norm already clips every example.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")  # recorded in the manifest instead
        engine, hooks, optimizer, dp_loader, noise = make_private(
            model, optimizer, loader, noise_multiplier=pv.noise_multiplier, target_epsilon=pv.target_epsilon,
            delta=pv.delta, max_grad_norm=pv.max_grad_norm, steps=steps,
            noise_generator=torch.Generator(device).manual_seed(cfg.seed))
    # Warm-up as transformers' Trainer counts it: a ratio of the total steps, rounded up.
    scheduler = get_scheduler(t.lr_scheduler, optimizer=optimizer.original_optimizer,
                              num_warmup_steps=math.ceil(t.warmup_ratio * steps), num_training_steps=steps)
    eval_loader = DataLoader(eval_rows, batch_size=t.batch_size, collate_fn=collator) if eval_rows else None
    state, control = TrainerState(max_steps=steps), TrainerControl()
    log = _train_loop(model, optimizer, scheduler, dp_loader, eval_loader, engine, run_dir, device, t, pv.delta,
                      steps, state, control, (thread_rechecks(), *callbacks),
                      tqdm(total=steps, desc="train (DP)", unit="step", disable=not show_progress, dynamic_ncols=True))
    hooks.cleanup()  # back to a plain peft model: no hooks, no grad_sample attributes

    # --- evaluate
    epsilon = engine.get_epsilon(pv.delta) if noise > 0 else math.inf
    final = _result(log, state.global_step, pv, epsilon, noise, sample_rate=1 / per_epoch,
                    expected_batch=t.batch_size * t.grad_accum)
    if eval_loader is not None:
        done = state.global_step in log["eval"]  # eval_steps already evaluated the last step
        eval_loss = log["eval"][state.global_step] if done else evaluate(model, eval_loader, device)
        final.update(eval_loss=eval_loss, eval_perplexity=math.exp(min(eval_loss, 50)))
        if not done:
            runs.append_metrics(run_dir, {"step": state.global_step, "eval_loss": eval_loss})
    spent = f"epsilon {epsilon:.3f}" if math.isfinite(epsilon) else "no privacy (noise_multiplier 0: epsilon infinite)"
    print(f"tunesmith: DP-SGD spent {spent} at delta {pv.delta} (noise multiplier {noise:.4g}, clip "
          f"{pv.max_grad_norm}, {state.global_step} steps)", flush=True)

    # --- save
    out = run_dir / "adapter"
    runs.save_trained(None, model, tokenizer, out)
    run.complete(final, out)
    return run_dir


def _result(log: dict, steps: int, pv, epsilon: float, noise: float, *, sample_rate: float,
            expected_batch: int) -> dict:
    """The run's result: the training loss, throughput and the privacy spent, with what it assumed."""
    # The mean over steps of each drawn batch's loss, as transformers reports train_loss.
    return {"train_loss": sum(log["losses"]) / len(log["losses"]) if log["losses"] else None,
            "steps": steps, **common.throughput(log["tokens"], log["seconds"]),
            "privacy": {"epsilon": epsilon if math.isfinite(epsilon) else None,  # None: no guarantee (no noise)
                        "delta": pv.delta, "noise_multiplier": noise, "max_grad_norm": pv.max_grad_norm,
                        "sample_rate": sample_rate, "expected_batch_size": expected_batch,
                        "steps": steps, "accountant": ACCOUNTANT, "grad_sample_mode": GRAD_SAMPLE_MODE,
                        "target_epsilon": pv.target_epsilon if pv.noise_multiplier is None else None,
                        "secure_rng": False}}  # torch's seeded generator, not a cryptographic one


def _train_loop(model, optimizer, scheduler, dp_loader, eval_loader, engine, run_dir: Path, device, t, delta: float,
                steps: int, state, control, callbacks, bar) -> dict:
    """DP-SGD steps until `steps` logical batches were drawn; logs loss, epsilon and learning rate."""
    import torch
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    model.train()
    t0, tokens, losses_logged, evals = time.time(), 0, [], {}
    window, window_rows = 0.0, 0  # the current logical batch's summed example losses, for logging
    _emit(callbacks, "on_train_begin", state, control, model=model)
    with BatchMemoryManager(data_loader=dp_loader, max_physical_batch_size=t.batch_size,
                            optimizer=optimizer) as physical, warnings.catch_warnings():
        # Hooks on lora_A of the first layer see inputs that need no gradient (the embedding is
        # frozen); torch warns that the full backward hook then fires with the output gradient only,
        # which is all opacus reads.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        while state.global_step < steps and not control.should_training_stop:
            for batch in physical:
                rows = len(batch["input_ids"])
                if rows == 0:
                    # Poisson sampling drew nobody (the model cannot run an empty batch). DP-SGD still
                    # takes the step: zero clipped gradients plus noise, and the accountant counts it.
                    for p in optimizer.params:
                        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
                else:
                    batch = {k: v.to(device) for k, v in batch.items()}
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    losses = example_losses(logits, batch["labels"])
                    losses.mean().backward()
                    window += float(losses.detach().sum())
                    window_rows += rows
                    tokens += int(batch["attention_mask"].sum())
                optimizer.step()  # clips and accumulates; noises and updates only at a logical batch's end
                optimizer.zero_grad(set_to_none=True)
                if optimizer._is_last_step_skipped:  # opacus's flag: a physical batch mid logical batch
                    continue
                scheduler.step()
                state.global_step += 1
                loss = window / window_rows if window_rows else None  # None: the step drew no rows
                if loss is not None:
                    losses_logged.append(loss)
                window, window_rows = 0.0, 0
                bar.update(1)
                _emit(callbacks, "on_step_end", state, control)
                if state.global_step % t.logging_steps == 0 or state.global_step in (1, steps):
                    epsilon = engine.get_epsilon(delta) if optimizer.noise_multiplier > 0 else math.inf
                    row = {"step": state.global_step, "epoch": round(state.global_step / len(dp_loader), 4),
                           "loss": loss, "epsilon": epsilon if math.isfinite(epsilon) else None,
                           "learning_rate": scheduler.get_last_lr()[0],
                           "tokens_seen": tokens, "tokens_per_s": round(tokens / (time.time() - t0), 1)}
                    runs.append_metrics(run_dir, row)
                    bar.set_postfix({"loss": "-" if loss is None else f"{loss:.4g}", "eps": f"{epsilon:.3g}"},
                                    refresh=False)
                    _emit(callbacks, "on_log", state, control, logs=row)
                if eval_loader is not None and t.eval_steps and state.global_step % t.eval_steps == 0:
                    evals[state.global_step] = evaluate(model, eval_loader, device)
                    runs.append_metrics(run_dir, {"step": state.global_step, "eval_loss": evals[state.global_step]})
                    _emit(callbacks, "on_evaluate", state, control, metrics={"eval_loss": evals[state.global_step]})
                if state.global_step >= steps or control.should_training_stop:
                    break
    bar.close()
    _emit(callbacks, "on_train_end", state, control, model=model)
    return {"losses": losses_logged, "tokens": tokens, "seconds": time.time() - t0, "eval": evals}
