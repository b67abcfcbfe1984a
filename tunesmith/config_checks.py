"""The config's cross-field and range checks: one function per section, all into one Collector.

`load_config` (config.py) builds the typed tree, then calls `cross_check`, which runs every
section's check so that all problems are reported together, each naming its key and, when the key
came from a YAML file, its file:line. A refusal that depends on the config alone lives here, not in
a recipe (GRPO's group size, PPO's reference, what DP-SGD cannot do), so `tunesmith validate` and
`tunesmith config` report it before any model loads.

config.py imports this module, so this module never imports tunesmith.config: the functions take
the loaded RunConfig as `cfg`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from tunesmith.errors import Collector

# Adapters that `disable_adapter()` turns into the exact base: PPO's KL reference is the policy with its
# adapter switched off (recipes/ppo.py). tunesmith.config re-exports it.
PPO_METHODS = ("lora", "vera", "ia3")
RL_RECIPES = ("grpo", "ppo")  # the recipes that read the rl section

AUTO = "auto"  # a value tunesmith/autotune.py resolves from the data before training; checked there
Bad = Callable[[str, str, str], None]  # bad(key, problem, fix): one problem, located at the key


def cross_check(cfg, errors: Collector, lines: dict[str, int], file: str | None) -> None:
    """Problems that involve more than one field, or a value's range; all reported together."""

    def bad(key: str, problem: str, fix: str) -> None:
        errors.add(problem, fix, file=file, line=lines.get(key), field=key)

    for check in SECTION_CHECKS:
        check(cfg, bad)


def check_run(cfg, bad: Bad) -> None:
    """The top-level keys and the model section."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", cfg.name or "run"):
        bad("name", f"{cfg.name!r} is not a plain folder name", "use letters, digits, '.', '_' and '-' only")
    if cfg.model.rope_scaling != "none" and cfg.recipe not in ("sft", "cpt"):
        bad("model.rope_scaling", f"RoPE scaling is applied by the sft and cpt recipes, not {cfg.recipe}",
            "set model.rope_scaling to none for this recipe")
    if cfg.model.rope_scaling != "none" and not 1.0 < cfg.model.rope_factor <= 64:
        bad("model.rope_factor", f"{cfg.model.rope_factor} does not stretch the positions",
            "use a factor above 1, e.g. 2 or 4")
    q = cfg.model.quantization
    if q != "none" and cfg.train.method == "full":
        bad("model.quantization", f"a {q} base cannot be fully fine-tuned (its weights are frozen integers)",
            "use train.method=lora (QLoRA), or model.quantization=none")


def check_data(cfg, bad: Bad) -> None:
    d = cfg.data
    if not d.train and not d.sources:
        bad("data.train", "no training data given", "set data.train to a data file or a list of files")
    for i, src in enumerate(d.sources):
        if not src.path:
            bad(f"data.sources[{i}].path", "no path given", "set path: to a data file")
        if src.weight <= 0:
            bad(f"data.sources[{i}].weight", f"{src.weight} is not a positive weight", "use e.g. 1.0")
    c = d.clean
    for key, value in (("near_threshold", c.near_threshold), ("toxicity_threshold", c.toxicity_threshold)):
        if not 0 < value <= 1:
            bad(f"data.clean.{key}", f"{value} is outside (0, 1]", "use e.g. 0.8")
    if c.ngram < 3:
        bad("data.clean.ngram", f"{c.ngram} words is too short to mean contamination", "use 8-13 (13 is standard)")
    if d.max_row_bytes < 1:
        bad("data.max_row_bytes", f"{d.max_row_bytes} is not a positive byte count", "use e.g. 1000000 (the default)")
    if not 0.0 <= d.validation_fraction < 1.0:
        bad("data.validation_fraction", f"{d.validation_fraction} is outside [0, 1)", "use e.g. 0.1")
    if d.validation and d.validation_fraction > 0:
        bad("data.validation_fraction", "both a validation file and a validation fraction are set",
            "keep one: remove data.validation_fraction or data.validation")
    if d.max_length < 8:
        bad("data.max_length", f"{d.max_length} is too small", "use at least 8 tokens (typically 512-4096)")
    if d.stride is not None and not 0 < d.stride <= d.max_length:
        bad("data.stride", f"{d.stride} is outside 1..max_length ({d.max_length})", "use e.g. max_length // 2")
    if d.task_prompt is not None and "{text}" not in d.task_prompt:
        bad("data.task_prompt", "the template has no {text} placeholder", "e.g. 'Classify: {text}'")


def check_train(cfg, bad: Bad) -> None:
    t, d = cfg.train, cfg.data
    if t.threads < 0:
        bad("train.threads", f"{t.threads} is negative", "use 0 (auto: one thread per free core) or a count")
    for key, value in (("train.batch_size", t.batch_size), ("train.grad_accum", t.grad_accum),
                       ("train.logging_steps", t.logging_steps), ("train.save_steps", t.save_steps)):
        if value != AUTO and value < 1:
            bad(key, f"{value} must be at least 1", "use a positive integer")
    if t.max_steps == 0 or t.max_steps < -1:
        bad("train.max_steps", f"{t.max_steps} is not a step count", "use a positive number, or -1 to train by epochs")
    if t.max_steps == -1 and t.epochs != AUTO and t.epochs <= 0:
        bad("train.epochs", f"{t.epochs} epochs with no max_steps trains nothing", "use epochs > 0 or set max_steps")
    if t.learning_rate != AUTO and not 0 < t.learning_rate < 1:
        bad("train.learning_rate", f"{t.learning_rate} is outside (0, 1)", "LoRA uses ~1e-4..5e-4, full ~1e-5")
    if not 0 <= t.warmup_ratio < 1:
        bad("train.warmup_ratio", f"{t.warmup_ratio} is outside [0, 1)", "use e.g. 0.03")
    for key, value in (("train.weight_decay", t.weight_decay), ("train.max_grad_norm", t.max_grad_norm)):
        if value < 0:
            bad(key, f"{value} is negative", "use 0 or a positive number")
    if t.save_total_limit < 1:
        bad("train.save_total_limit", f"{t.save_total_limit} keeps no checkpoint", "use at least 1 (resume needs one)")
    if t.freeze and t.method != "full":
        bad("train.freeze", "freezing layers applies to full fine-tuning", "set train.method=full, or drop freeze")
    if t.kernels == "liger" or cfg.model.attention == "flash_attention_2":  # GPU-only choices, checked here
        from tunesmith.errors import TunesmithError
        from tunesmith.hardware import training_attention, training_kernels

        try:
            training_kernels(t.kernels)
            training_attention(cfg.model.attention, d.max_length)
        except TunesmithError as e:
            p = e.problems[0]
            bad(p.field, p.problem, p.fix)
    if t.time_budget is not None and t.time_budget <= 0:
        bad("train.time_budget", f"{t.time_budget} minutes leaves no time to train", "use minutes > 0, or null")
    # auto eval_steps and patience are resolved from the data (tunesmith/autotune.py), consistent by rule
    eval_steps, patience = (None if v == AUTO else v for v in (t.eval_steps, t.early_stopping_patience))
    if eval_steps is not None and eval_steps < 0:
        bad("train.eval_steps", f"{t.eval_steps} is negative", "use 0 (end of training only) or a step count")
    if patience is not None and patience < 0:
        bad("train.early_stopping_patience", f"{t.early_stopping_patience} is negative", "use 0 (off) or more")
    if patience and eval_steps == 0:
        bad("train.early_stopping_patience", "early stopping needs periodic evaluation",
            "set train.eval_steps (e.g. 20) and validation data")
    if eval_steps and eval_steps > 0 and not (d.validation or d.validation_fraction > 0):
        bad("train.eval_steps", "eval_steps is set but there is no validation data",
            "set data.validation or data.validation_fraction, or set train.eval_steps=0")


def check_lora(cfg, bad: Bad) -> None:
    lo = cfg.lora
    for key, value in (("lora.r", lo.r), ("lora.alpha", lo.alpha)):
        if value < 1:
            bad(key, f"{value} must be at least 1", "use a positive integer")
    if lo.plus_ratio and (cfg.train.method != "lora" or lo.plus_ratio < 1):
        bad("lora.plus_ratio", f"{lo.plus_ratio} needs train.method=lora and a ratio >= 1", "use e.g. 16, or 0")
    if not 0 <= lo.dropout < 1:
        bad("lora.dropout", f"{lo.dropout} is outside [0, 1)", "use e.g. 0.05")


def check_preference(cfg, bad: Bad) -> None:
    p = cfg.preference
    if p.beta <= 0:
        bad("preference.beta", f"{p.beta} must be positive", "use e.g. 0.1")
    if not 0 <= p.label_smoothing < 0.5:
        bad("preference.label_smoothing", f"{p.label_smoothing} is outside [0, 0.5)", "use e.g. 0.1")


def check_rl(cfg, bad: Bad) -> None:
    """The rl section's ranges, and what GRPO and PPO need from it and from train/data. The reward
    functions themselves are imported and checked by recipes/rewards.py::check (that needs code to run)."""
    r, t = cfg.rl, cfg.train
    if cfg.recipe == "grpo" and not (r.reward_functions or r.reward_model):
        bad("rl.reward_functions", "GRPO needs at least one reward", "list 'rewards.py:my_reward' functions "
            "or set rl.reward_model")
    if cfg.recipe == "ppo" and not r.reward_model:
        bad("rl.reward_model", "PPO needs a reward model", "train one with recipe: reward and name its run directory")
    if cfg.recipe == "grpo" and r.num_generations < 2:
        bad("rl.num_generations", f"{r.num_generations} completions per prompt leave no group to compare",
            "use at least 2 (4-16 is common)")
    for key, value in (("rl.max_new_tokens", r.max_new_tokens), ("rl.ppo_epochs", r.ppo_epochs)):
        if value < 1:
            bad(key, f"{value} must be at least 1", "use a positive integer")
    if not 0 < r.clip_range < 1:
        bad("rl.clip_range", f"{r.clip_range} is outside (0, 1)", "use e.g. 0.2")
    if r.temperature <= 0 or r.kl_coef < 0:
        bad("rl.temperature" if r.temperature <= 0 else "rl.kl_coef", "must be positive", "use e.g. 1.0 / 0.05")
    per_step = 0 if t.batch_size == AUTO else t.batch_size * t.grad_accum  # auto: whole groups by rule
    # trl's GRPO samples a step's completions in whole groups of num_generations (each prompt's group
    # is compared with itself); a group < 2 and a batch < 1 are reported above.
    if cfg.recipe == "grpo" and r.num_generations >= 2 and per_step > 0 and per_step % r.num_generations:
        bad("train.batch_size", f"a step's {t.batch_size} x {t.grad_accum} = {per_step} completions do not split "
            f"into groups of rl.num_generations = {r.num_generations}",
            f"make train.batch_size x train.grad_accum a multiple of {r.num_generations}, e.g. "
            f"train.batch_size={r.num_generations * max(1, round(t.batch_size / r.num_generations))}")
    if cfg.recipe == "ppo" and r.reward_functions:
        bad("rl.reward_functions", "PPO scores completions with rl.reward_model only; the reward functions would "
            "be ignored", "remove rl.reward_functions, or use recipe: grpo for Python rewards")
    if cfg.recipe == "ppo" and t.method not in PPO_METHODS:
        bad("train.method", f"PPO needs an adapter the reference can switch off; train.method is {t.method}",
            f"use train.method: {' / '.join(PPO_METHODS)}")
    if cfg.recipe in RL_RECIPES and r.max_new_tokens >= cfg.data.max_length:
        bad("rl.max_new_tokens", f"rl.max_new_tokens ({r.max_new_tokens}) leaves no room for the prompt in "
            f"data.max_length ({cfg.data.max_length})", "raise data.max_length or lower rl.max_new_tokens")


def check_privacy(cfg, bad: Bad) -> None:
    """DP-SGD's settings, and what its loop (recipes/dp.py) cannot do, all known from the config."""
    pv, t = cfg.privacy, cfg.train
    if not pv.enabled:
        return
    if cfg.recipe != "sft" or t.method != "lora":
        bad("privacy.enabled", "DP-SGD is offered for LoRA SFT", "use recipe: sft with train.method: lora")
    if not 0 < pv.delta < 1:
        bad("privacy.delta", f"{pv.delta} is outside (0, 1)", "use less than 1 / training rows, e.g. 1e-5")
    if pv.max_grad_norm <= 0 or pv.target_epsilon <= 0 or (pv.noise_multiplier is not None and pv.noise_multiplier < 0):
        bad("privacy", "max_grad_norm, target_epsilon and noise_multiplier must be positive",
            "use e.g. max_grad_norm 1.0, target_epsilon 8")
    if cfg.data.packing:
        bad("data.packing", "packed rows mix several people's rows into one sample, which breaks per-sample "
            "privacy accounting", "set data.packing=false")
    if t.gradient_checkpointing:
        bad("train.gradient_checkpointing", "train.gradient_checkpointing recomputes activations, which opacus's "
            "per-sample gradient hooks would record twice",
            "set train.gradient_checkpointing=false (LoRA activations fit)")
    if t.early_stopping_patience != AUTO and t.early_stopping_patience > 0:
        bad("train.early_stopping_patience", "early stopping keeps a best checkpoint; DP runs write no checkpoints",
            "set train.early_stopping_patience=0")
    if cfg.lora.use_dora:
        bad("lora.use_dora", "DoRA's magnitude vector is not an nn.Linear, which opacus's per-sample gradients "
            "need", "use plain LoRA: lora.use_dora=false")


def check_sweep(cfg, bad: Bad) -> None:
    if cfg.sweep.trials < 1:
        bad("sweep.trials", f"{cfg.sweep.trials} must be at least 1", "use e.g. 8")


def check_eval(cfg, bad: Bad) -> None:
    """The eval section's ranges; the suite file itself is read and checked by `train`/`validate`
    before any training starts (eval/tasks.py::load_suite)."""
    ev = cfg.eval
    if ev.limit is not None and ev.limit < 1:
        bad("eval.limit", f"{ev.limit} rows evaluates nothing", "use a positive number, or null for the suite's")
    if ev.threshold < 0:
        bad("eval.threshold", f"{ev.threshold} is negative", "use e.g. 0.05 (5% worse than base is flagged)")
    if ev.samples < 0:
        bad("eval.samples", f"{ev.samples} is negative", "use e.g. 3")


def check_launcher(cfg, bad: Bad) -> None:
    t = cfg.train
    if t.launcher == "ray" and t.workers < 1:
        bad("train.workers", f"{t.workers} workers cannot train", "use 2 or more (1 runs one Ray worker)")
    if t.launcher == "ray" and cfg.privacy.enabled:
        bad("train.launcher", "DP-SGD runs in one process", "use train.launcher: local with privacy.enabled")


def check_audit(cfg, bad: Bad) -> None:
    a = cfg.audit
    if a.canaries < 0:
        bad("audit.canaries", f"{a.canaries} is negative", "use 0 (none) or a small count, e.g. 3")
    if a.canaries and not a.canary_repetitions:
        bad("audit.canary_repetitions", "no repetition counts given", "use e.g. [1, 4, 16]")
    if any(r < 1 for r in a.canary_repetitions):
        bad("audit.canary_repetitions", f"{a.canary_repetitions} holds a count below 1", "use counts >= 1")
    if a.canaries and cfg.recipe not in ("sft", "cpt"):
        bad("audit.canaries", f"canaries are inserted into sft and cpt training rows, not {cfg.recipe}'s",
            "set audit.canaries to 0 for this recipe")
    if a.limit is not None and a.limit < 1:
        bad("audit.limit", f"{a.limit} is below 1", "use a positive count, or null for every prompt")
    if not 0 <= a.threshold < 1:
        bad("audit.threshold", f"{a.threshold} is outside [0, 1)", "use e.g. 0.05 (five percentage points)")
    if cfg.energy.enabled and not re.fullmatch(r"[A-Z]{3}", cfg.energy.country):
        bad("energy.country", f"{cfg.energy.country!r} is not an ISO 3166-1 alpha-3 code",
            "use three capital letters, e.g. USA, FRA, DEU, GBR")


def check_moe(cfg, bad: Bad) -> None:
    """moe: section (mixture-of-experts LoRA targets). Whether the model is an MoE, and has the
    parts named, is checked on the loaded model (models/moe.py::lora_targets)."""
    import difflib

    from tunesmith.models.moe import TARGETS, TENSOR_TARGETS

    m, lo = cfg.moe, cfg.lora
    for i, t in enumerate(m.targets):
        if t not in TARGETS:
            close = difflib.get_close_matches(str(t), TARGETS, n=1, cutoff=0.5)
            bad(f"moe.targets[{i}]", f"unknown MoE target {t!r}",
                f"did you mean '{close[0]}'?" if close else f"use any of {', '.join(TARGETS)}")
    if m.router_aux_loss_coef is not None and m.router_aux_loss_coef < 0:
        bad("moe.router_aux_loss_coef", f"{m.router_aux_loss_coef} is negative", "use e.g. 0.01, or 0 to turn it off")
    where = "moe.targets" if m.targets else "moe.router_aux_loss_coef" if m.router_aux_loss_coef is not None else None
    # federated clients train through tunesmith/federated/local.py, which applies neither
    if where and (cfg.recipe not in ("sft", "cpt") or cfg.privacy.enabled or cfg.federated.enabled):
        bad(where, f"{where} is applied by the sft and cpt recipes without DP-SGD or federated training, not "
            f"{cfg.recipe}" + (" with privacy.enabled" if cfg.privacy.enabled else "")
            + (" with federated.enabled" if cfg.federated.enabled else ""),
            f"remove {where}" + (", or set federated.enabled: false" if cfg.federated.enabled else ""))
    if not m.targets:
        return
    if cfg.train.method != "lora":
        bad("moe.targets", f"moe.targets picks LoRA targets, but train.method is {cfg.train.method}",
            "set train.method: lora, or remove moe.targets")
    tensors = [t for t in m.targets if t in TENSOR_TARGETS]
    # peft adapts fused expert tensors and the router's weight with lora.ParamWrapper, which cannot
    # factor dropout out of W + BA (it raises for lora_dropout != 0) and has no DoRA.
    if tensors and lo.dropout:
        bad("lora.dropout", f"{lo.dropout}: LoRA on {' and '.join(tensors)} weight tensors (peft's target_parameters) "
            "has no dropout", "set lora.dropout: 0")
    if tensors and lo.use_dora:
        bad("lora.use_dora", f"DoRA does not apply to {' and '.join(tensors)} weight tensors",
            "set lora.use_dora: false, or keep moe.targets to shared and attention")


def check_vision(cfg, bad: Bad) -> None:
    """vision: section and recipe: vlm."""
    v = cfg.vision
    if v.max_images < 1:
        bad("vision.max_images", f"{v.max_images} allows no image", "use e.g. 4")
    if v.max_image_bytes < 1:
        bad("vision.max_image_bytes", f"{v.max_image_bytes} is not a positive byte count", "use e.g. 20000000")
    if v.image_size is not None and v.image_size < 8:
        bad("vision.image_size", f"{v.image_size} pixels is too small to see anything", "use e.g. 384, or null")
    if cfg.recipe != "vlm":
        return
    # What the vlm recipe (recipes/vlm.py) does not do, said before any model loads.
    if cfg.train.method not in ("lora", "full"):
        bad("train.method", f"recipe vlm trains with lora or full, not {cfg.train.method}", "set train.method: lora")
    refused = (("data.packing", cfg.data.packing, "packing would join rows whose image tokens belong to one row",
                "set data.packing: false"),
               ("data.overlong", cfg.data.overlong == "truncate", "truncation could cut through an image's tokens",
                "set data.overlong: drop, or raise data.max_length"),
               ("data.clean.enabled", cfg.data.clean.enabled, "curation reads text rows, not rows with images",
                "set data.clean.enabled: false"),
               ("privacy.enabled", cfg.privacy.enabled, "DP-SGD is not available for recipe vlm",
                "set privacy.enabled: false"),
               ("model.quantization", cfg.model.quantization != "none", "recipe vlm loads the base unquantized",
                "set model.quantization: none"),
               ("model.gguf_file", cfg.model.gguf_file is not None, "a vision-language model needs its "
                "transformers checkpoint and processor, not a .gguf file", "name the model's folder or hub id"))
    for key, on, why, fix in refused:
        if on:
            bad(key, why, fix)


FEDERATED_RECIPES = ("sft", "cpt")  # the recipes whose rows a client trains on (tunesmith/federated/local.py)
FEDERATED_METHODS = ("lora",)  # only the adapter's weights travel, and they average as plain matrices


def check_federated(cfg, bad: Bad) -> None:
    """federated: section: what the Flower clients and server (tunesmith/federated/) can run."""
    f, t = cfg.federated, cfg.train
    if not f.enabled:
        return
    if cfg.recipe not in FEDERATED_RECIPES:
        bad("recipe", f"federated training runs the sft and cpt recipes, not {cfg.recipe}",
            "use recipe: sft or cpt, or set federated.enabled=false")
    if t.method not in FEDERATED_METHODS:
        bad("train.method", f"federated training averages LoRA adapters; train.method is {t.method}",
            "use train.method: lora (only the adapter's weights travel between clients and server)")
    if cfg.lora.use_dora or cfg.lora.plus_ratio:
        bad("lora", "DoRA and LoRA+ are not offered with federated training", "set lora.use_dora=false and "
            "lora.plus_ratio=0")
    if t.launcher != "local":
        bad("train.launcher", "Flower's simulation engine starts its own Ray workers for the clients",
            "use train.launcher: local with federated.enabled")
    if t.lr_range_test or t.time_budget is not None:
        bad("train.lr_range_test" if t.lr_range_test else "train.time_budget", "a range test and a time budget "
            "time one process's steps, not a federation's rounds", "remove it; size the run with federated.rounds "
            "and federated.local_steps")
    if cfg.model.quantization != "none":
        bad("model.quantization", "quantized bases are not offered with federated training",
            "set model.quantization=none")
    if cfg.data.sources:
        bad("data.sources", "federated clients hold rows of data.train; weighted sources are not dealt out",
            "list the files in data.train (partition: files gives each file to one client)")
    clients = len(cfg.data.train) if f.partition == "files" else f.num_clients
    key = "data.train" if f.partition == "files" else "federated.num_clients"
    if clients < 2:
        bad(key, f"{clients} client(s) is no federation", "use 2 or more clients (partition files: one data.train "
            "file per client)")
    twice = sorted({p for p in cfg.data.train if cfg.data.train.count(p) > 1})
    if f.partition == "files" and twice:
        bad("data.train", f"{twice[0]} is listed more than once; with partition: files each file is one client's "
            "data", "list each client's file once")
    for name, value in (("rounds", f.rounds), ("local_steps", f.local_steps)):
        if value < 1:
            bad(f"federated.{name}", f"{value} must be at least 1", "use a positive integer, e.g. 3")
    if not 0 < f.fraction_fit <= 1:
        bad("federated.fraction_fit", f"{f.fraction_fit} is outside (0, 1]", "use e.g. 1.0 (every client, every "
            "round) or 0.5")
    if f.proximal_mu < 0:
        bad("federated.proximal_mu", f"{f.proximal_mu} is negative", "use 0 or a small positive weight, e.g. 0.01")
    if f.strategy == "fedprox" and cfg.privacy.enabled:
        bad("federated.strategy", "FedProx's proximal term is no per-example loss, so opacus's per-sample "
            "gradients would leave it out", "use federated.strategy: fedavg with privacy.enabled")
    if f.secure_aggregation and f.save_client_updates:
        bad("federated.save_client_updates", "SecAgg+ hides each client's update from the server",
            "set federated.save_client_updates=false, or secure_aggregation=false")
    if f.secure_aggregation and math.ceil(f.fraction_fit * clients) < 2:
        bad("federated.fraction_fit", f"SecAgg+ needs at least 2 clients per round; {f.fraction_fit} of {clients} "
            "samples fewer", "raise federated.fraction_fit or add clients")


SECTION_CHECKS = (check_run, check_data, check_train, check_lora, check_preference, check_rl, check_privacy,
                  check_sweep, check_eval, check_audit, check_launcher, check_moe, check_vision, check_federated)
