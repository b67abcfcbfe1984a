"""Reinforcement learning from rewards: GRPO through trl, and a compact PPO written here.

GRPO (recipe: grpo) samples rl.num_generations completions per prompt, scores them with Python
reward functions (and optionally a reward model), and pushes each completion's log-probabilities
by its reward relative to its group; trl's GRPOTrainer does all of it. With LoRA the KL reference
is the base with the adapter disabled (trl does this when it is given a peft_config).

PPO (recipe: ppo): trl 1.16 ships no PPOTrainer (neither in trl.trainer nor trl.experimental), so
the loop is below, readable top to bottom: sample one completion per prompt, score it with the
reward model, subtract a per-token KL penalty to the reference (the same model, adapter disabled),
estimate advantages with GAE against a value head on the policy's last hidden states, then take
rl.ppo_epochs clipped-surrogate steps on the batch. The loss pieces are small functions that
tests/recipes/test_rl.py checks against trl's GRPO loss and against direct loops.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import time
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import Collector, TunesmithError, fail

# PPO constants (not config): gamma = 1 because the only delayed reward is the score at the end of a
# short completion, so discounting would just shrink it; lambda = 0.95 and the value-loss settings
# are the defaults of trl's former PPOConfig (lam, cliprange_value, vf_coef).
GAE_GAMMA = 1.0
GAE_LAMBDA = 0.95
VALUE_CLIP = 0.2
VALUE_COEF = 0.1
PPO_METHODS = ("lora", "vera", "ia3")  # adapters that `disable_adapter()` turns into the exact base

# Keyword names trl's GRPOTrainer passes to reward functions itself: a data column may not reuse one.
TRL_REWARD_KWARGS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
                     "environments")


# --------------------------------------------------------------------------- checks and rewards


def check(cfg) -> None:
    """RL settings that need code to check, all reported at once: the reward functions import and
    take the right arguments, GRPO batches hold whole groups, PPO's method has a reference. Runs
    before any model loads; cheap enough for `tunesmith validate` (no reward model is loaded)."""
    errors = Collector(title="invalid rl settings:")
    r, t = cfg.rl, cfg.train
    if r.reward_functions:
        try:
            load_reward_functions(r.reward_functions, cfg.config_path)
        except TunesmithError as e:
            errors.problems += e.problems
    if cfg.recipe == "grpo":
        per_step = t.batch_size * t.grad_accum
        if per_step % r.num_generations:
            errors.add(f"a step's {t.batch_size} x {t.grad_accum} = {per_step} completions do not split into "
                       f"groups of rl.num_generations = {r.num_generations}",
                       f"make train.batch_size x train.grad_accum a multiple of {r.num_generations}, e.g. "
                       f"train.batch_size={r.num_generations * max(1, round(t.batch_size / r.num_generations))}",
                       field="train.batch_size")
    if cfg.recipe == "ppo":
        if r.reward_functions:
            errors.add("PPO scores completions with rl.reward_model only; the reward functions would be ignored",
                       "remove rl.reward_functions, or use recipe: grpo for Python rewards",
                       field="rl.reward_functions")
        if t.method not in PPO_METHODS:
            errors.add(f"PPO needs an adapter the reference can switch off; train.method is {t.method}",
                       f"use train.method: {' / '.join(PPO_METHODS)}", field="train.method")
    if r.max_new_tokens >= cfg.data.max_length:
        errors.add(f"rl.max_new_tokens ({r.max_new_tokens}) leaves no room for the prompt in data.max_length "
                   f"({cfg.data.max_length})", "raise data.max_length or lower rl.max_new_tokens",
                   field="rl.max_new_tokens")
    errors.raise_if_any()


def load_reward_functions(specs: list[str], config_path: str | None) -> list:
    """The callables named by rl.reward_functions ('file.py:function' relative to the config's
    folder, or 'module:function'); every problem is collected and raised at once."""
    base = Path(config_path).parent if config_path else Path.cwd()
    errors = Collector(title="rl.reward_functions: cannot load:")
    funcs = []
    for i, spec in enumerate(specs):
        try:
            funcs.append(_load_reward_function(spec, base, f"rl.reward_functions[{i}]"))
        except TunesmithError as e:
            errors.problems += e.problems
    errors.raise_if_any()
    return funcs


def _load_reward_function(spec: str, base: Path, key: str):
    target, sep, name = spec.rpartition(":")  # rpartition: 'C:\\r.py:f' splits at the last colon
    if not sep or not target or not name.isidentifier():
        raise fail(f"{spec!r} is not 'file.py:function' or 'module:function'", "e.g. 'rewards.py:correct'",
                   field=key)
    if target.endswith(".py"):
        path = Path(target).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise fail(f"reward file {path} not found", f"paths are relative to the config's folder ({base})",
                       field=key)
        # A unique module name per file, so two configs' rewards.py never shadow each other.
        module_name = f"tunesmith_reward_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        where = str(path)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - any error in user code is reported as theirs
            raise fail(f"importing {path} failed: {type(e).__name__}: {e}",
                       f"fix the file (`python {path}` shows the traceback)", field=key) from None
    else:
        where = target
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise fail(f"cannot import module {target!r}: {e}",
                       "give a file path ending in .py, or a module on the Python path", field=key) from None
        except Exception as e:  # noqa: BLE001
            raise fail(f"importing {target} failed: {type(e).__name__}: {e}", "fix the module", field=key) from None
    if not hasattr(module, name):
        defined = [n for n, v in vars(module).items()
                   if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == module.__name__]
        raise fail(f"{where} has no function {name!r}",
                   f"functions defined there: {', '.join(defined)}" if defined else "define it there", field=key)
    func = getattr(module, name)
    if not callable(func):
        raise fail(f"{where}:{name} is a {type(func).__name__}, not a function",
                   "name a function taking (prompts, completions, **columns)", field=key)
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return func  # a builtin or C callable: nothing to inspect
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        raise fail(f"{where}:{name} takes no **kwargs, but it is also passed completion_ids, trainer_state and "
                   "every data column", f"write it as def {name}(prompts, completions, **kwargs)", field=key)
    return func


def _check_reward_columns(funcs: list, specs: list[str], columns: set[str]) -> None:
    """A reward function's required parameter must be a data column (else trl fails mid-training)."""
    errors = Collector(title="rl.reward_functions: parameters the data cannot fill:")
    for i, (func, spec) in enumerate(zip(funcs, specs)):
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if required and p.name not in TRL_REWARD_KWARGS and p.name not in columns:
                errors.add(f"{spec} needs the column {p.name!r}, which the data rows do not have "
                           f"(columns: {', '.join(sorted(columns)) or 'none'})",
                           f"add {p.name!r} to every row, or give the parameter a default",
                           field=f"rl.reward_functions[{i}]")
    errors.raise_if_any()


def resolve_reward_model(spec: str, config_path: str | None) -> Path:
    """rl.reward_model as a folder: relative paths are tried from the current directory (where
    runs/ lands, like output_dir) and then from the config's folder."""
    p = Path(spec).expanduser()
    tried = [p] if p.is_absolute() else [Path.cwd() / p] + ([Path(config_path).parent / p] if config_path else [])
    for candidate in tried:
        if candidate.is_dir():
            return candidate.resolve()
    raise fail(f"reward model {spec!r} not found (looked for {' and '.join(str(c) for c in tried)})",
               "train one first, e.g. `tunesmith train configs/reward-lora.yaml` writes runs/reward-lora; or point "
               "rl.reward_model at a sequence-classification checkpoint folder", field="rl.reward_model")


def load_reward_model(path: Path):
    """(model, tokenizer) of a finished `recipe: reward` run (base + LoRA SEQ_CLS adapter, merged)
    or of a sequence-classification checkpoint with one output; frozen, in eval mode."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if runs.is_run_dir(path):
        from tunesmith.config import load_config
        from tunesmith.models.loading import materialize, resolve

        run_cfg = load_config(path / runs.CONFIG_FILE)
        status = (runs.read_manifest(path) or {}).get("status")
        if run_cfg.recipe != "reward":
            raise fail(f"{path} is a recipe: {run_cfg.recipe} run, not a reward model",
                       "point rl.reward_model at a recipe: reward run", field="rl.reward_model")
        if status != "completed":
            raise fail(f"reward run {path} has not finished (status: {status})",
                       f"finish it with `tunesmith train {path / runs.CONFIG_FILE}`", field="rl.reward_model")
        if (path / "model").is_dir():  # a fully fine-tuned reward model
            model = AutoModelForSequenceClassification.from_pretrained(path / "model")
            tokenizer = AutoTokenizer.from_pretrained(path / "model")
        else:
            from peft import PeftModel

            base = AutoModelForSequenceClassification.from_pretrained(
                materialize(resolve(run_cfg.model.name, run_cfg.model.gguf_file)), num_labels=1,
                trust_remote_code=run_cfg.model.trust_remote_code)
            # Merged: one plain module to call (and the PPO policy's adapter stays the only one around).
            model = PeftModel.from_pretrained(base, path / "adapter").merge_and_unload()
            tokenizer = AutoTokenizer.from_pretrained(path / "adapter")  # the run's tokenizer and template
    elif (path / "config.json").is_file():
        from transformers import AutoConfig

        labels = AutoConfig.from_pretrained(path).num_labels
        if labels != 1:  # checked before loading: a causal LM checkpoint would get a random 2-way head
            raise fail(f"reward model {path} has {labels} outputs; a reward model has one score",
                       "train one with recipe: reward, or save the classifier with num_labels=1",
                       field="rl.reward_model")
        model = AutoModelForSequenceClassification.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        raise fail(f"{path} is neither a reward run (config.yaml + manifest.json) nor a checkpoint (config.json)",
                   "point rl.reward_model at runs/NAME of a recipe: reward run", field="rl.reward_model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    return model.eval().requires_grad_(False), tokenizer


# --------------------------------------------------------------------------- data (shared)


def _setup(cfg):
    """Seed, precision, tokenizer and prompt rows, shared by both recipes; no run directory yet, so
    bad data never leaves a half-made run behind."""
    from transformers import set_seed

    from tunesmith.data.prepare import check_kinds, load_all
    from tunesmith.data.templates import require_template
    from tunesmith.hardware import resolve_precision, use_threads
    from tunesmith.models.loading import load_tokenizer, resolve

    set_seed(cfg.seed)
    precision = resolve_precision(cfg.train.precision)
    use_threads(cfg.train.threads)
    source = resolve(cfg.model.name, cfg.model.gguf_file)
    tokenizer = load_tokenizer(source, cfg.model.chat_template, cfg.model.trust_remote_code)
    require_template(tokenizer)
    loaded = load_all(cfg.data, cfg.seed)
    check_kinds(loaded.train + loaded.validation, ("prompt", "chat"))
    budget = cfg.data.max_length - cfg.rl.max_new_tokens
    train, dropped = _fit(_prompt_rows(loaded.train), tokenizer, budget)
    val, val_dropped = _fit(_prompt_rows(loaded.validation), tokenizer, budget)
    if not train:
        raise fail(f"every training prompt is longer than data.max_length - rl.max_new_tokens = {budget} tokens",
                   "raise data.max_length", field="data.max_length")
    report = {"load": loaded.info, "train_prompts": len(train), "validation_prompts": len(val),
              "dropped_overlong": {"train": dropped, "validation": val_dropped, "prompt_token_budget": budget}}
    if dropped or val_dropped:
        print(f"tunesmith: dropped {dropped + val_dropped} prompts longer than {budget} tokens "
              "(data.max_length - rl.max_new_tokens)", flush=True)
    return source, tokenizer, precision, train, val, report


def _prompt_rows(examples) -> list[dict]:
    """{"prompt": messages, **columns} per example; a chat row's prompt is its conversation up to
    the last user turn. Every row gets every column (None where missing): datasets takes its columns
    from the first row."""
    rows = []
    for e in examples:
        extra = {k: v for k, v in e.extra.items() if k != "tools"}
        prompt = e.messages
        if e.kind == "chat":
            users = [i for i, m in enumerate(e.messages) if m["role"] == "user"]
            if not users:
                raise fail("a chat row without a user turn has no prompt to answer", "add a user turn",
                           file=e.file, line=e.line)
            prompt = e.messages[: users[-1] + 1]
        clash = sorted(set(extra) & set(TRL_REWARD_KWARGS))
        if clash:
            raise fail(f"column {clash[0]!r} has the name of an argument trl passes to reward functions",
                       f"rename it (data.columns can map it), e.g. to {clash[0]}_", file=e.file, line=e.line)
        rows.append({"prompt": prompt, **extra})
    columns = sorted({k for r in rows for k in r})
    return [{k: r.get(k) for k in columns} for r in rows]


def _fit(rows: list[dict], tokenizer, budget: int) -> tuple[list[dict], int]:
    """Rows whose rendered prompt fits `budget` tokens, and how many did not."""
    lengths = [len(ids) for ids in _encode_prompts(tokenizer, [r["prompt"] for r in rows])] if rows else []
    kept = [r for r, n in zip(rows, lengths) if n <= budget]
    return kept, len(rows) - len(kept)


def _encode_prompts(tokenizer, prompts: list[list[dict]]) -> list[list[int]]:
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]  # the template already has BOS if any


def _start_run(cfg, source, precision, report):
    run_dir, resume_from = runs.prepare_run_dir(cfg)
    from tunesmith.config import dump_yaml
    from tunesmith.data.prepare import data_files

    (run_dir / runs.CONFIG_FILE).write_text(dump_yaml(cfg))
    manifest = runs.build_manifest(cfg, data_files=data_files(cfg.data), model_source=source, precision=precision)
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)
    runs.write_json(run_dir / "data_report.json", report)
    return run_dir, resume_from, manifest


def _load_policy(cfg, source, precision):
    from tunesmith.hardware import training_attention
    from tunesmith.models.loading import load_model

    # As in sft: LoRA never updates the base, so under bf16 the base is stored in bf16.
    base_dtype = "bfloat16" if precision[0] == "bf16" and cfg.train.method != "full" else "float32"
    model = load_model(source, cfg.model.trust_remote_code, dtype=base_dtype,
                       attention=training_attention(cfg.model.attention, cfg.data.max_length),
                       quantization=cfg.model.quantization)
    return model, base_dtype


# --------------------------------------------------------------------------- GRPO


def run_grpo(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train with GRPO according to `cfg` (recipe: grpo); returns the run directory."""
    check(cfg)  # before the heavy imports: a mistyped reward function is reported at once
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from tunesmith.hardware import thread_rechecks
    from tunesmith.recipes.sft import _make_logger_callback, _training_arguments

    # --- setup and data
    source, tokenizer, precision, train_rows, val_rows, report = _setup(cfg)
    reward_funcs = load_reward_functions(cfg.rl.reward_functions, cfg.config_path)
    _check_reward_columns(reward_funcs, cfg.rl.reward_functions, set(train_rows[0]) - {"prompt"})
    reward_tokenizers = [None] * len(reward_funcs)
    if cfg.rl.reward_model:  # trl scores prompt + completion with it, rendered by its own chat template
        reward_model, reward_tokenizer = load_reward_model(resolve_reward_model(cfg.rl.reward_model, cfg.config_path))
        reward_funcs.append(reward_model)
        reward_tokenizers.append(reward_tokenizer)
    if val_rows and cfg.train.batch_size % cfg.rl.num_generations:
        raise fail(f"evaluation generates groups of {cfg.rl.num_generations} within one batch of "
                   f"train.batch_size = {cfg.train.batch_size}",
                   f"make train.batch_size a multiple of {cfg.rl.num_generations}, or drop the validation data",
                   field="train.batch_size")
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(val_rows) if val_rows else None
    run_dir, resume_from, manifest = _start_run(cfg, source, precision, report)

    # --- model
    model, base_dtype = _load_policy(cfg, source, precision)
    manifest["model"].update(base_dtype=base_dtype)
    peft_config = None
    if cfg.train.method != "full":
        from tunesmith.models import adapters

        peft_config = adapters.peft_config(cfg.train.method, cfg.lora)

    # --- train
    r = cfg.rl
    # batch_size counts completions (trl's per_device_train_batch_size): a step samples
    # batch_size x grad_accum completions, i.e. that / num_generations prompts.
    args = _training_arguments(cfg.train, run_dir, precision[0], cfg.seed, eval_ds is not None, GRPOConfig,
                               num_generations=r.num_generations, max_completion_length=r.max_new_tokens,
                               temperature=r.temperature, beta=r.kl_coef, epsilon=r.clip_range, use_vllm=False,
                               # Dropout off (as in PPO below): the KL to the reference and the
                               # importance ratios then compare the same function.
                               disable_dropout=True)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_ds,
                          eval_dataset=eval_ds, processing_class=tokenizer,
                          reward_processing_classes=reward_tokenizers, peft_config=peft_config,
                          callbacks=[_make_logger_callback(run_dir, show_progress), thread_rechecks(), *callbacks])
    trainer.remove_callback(PrinterCallback)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - t0

    # --- save
    logged = [h for h in trainer.state.log_history if "reward" in h]
    final = {"train_loss": result.training_loss, "steps": trainer.state.global_step,
             "train_seconds": round(seconds, 1),
             "reward_first": logged[0]["reward"] if logged else None,
             "reward_last": logged[-1]["reward"] if logged else None,
             "kl_last": logged[-1].get("kl") if logged else None,
             "completion_length_last": logged[-1].get("completions/mean_length") if logged else None}
    if eval_ds is not None:
        final["eval_reward"] = trainer.evaluate().get("eval_reward")
    out = run_dir / ("model" if cfg.train.method == "full" else "adapter")
    runs.save_trained(trainer, trainer.model, tokenizer, out)
    runs.complete(run_dir, manifest, final, resume_from, out)
    return run_dir


# --------------------------------------------------------------------------- PPO math


def masked_mean(x, mask):
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x, mask, eps: float = 1e-8):
    """Zero mean, unit variance over the masked entries (unbiased variance); masked-out entries 0."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1).clamp(min=1)  # Bessel's correction
    return (x - mean) * (var + eps).rsqrt() * mask


def gae(rewards, values, mask, gamma: float = GAE_GAMMA, lam: float = GAE_LAMBDA):
    """Generalised advantage estimation over completion tokens: (advantages, returns).

    values[:, t] is V of the state before token t; past the end of a completion (mask 0) rewards
    and values count as 0, so the last real token bootstraps from nothing.
    """
    import torch

    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, advantages + values


def policy_loss(logp, old_logp, advantages, mask, clip: float):
    """PPO's clipped surrogate, averaged over completion tokens: (loss, fraction of clipped ratios).
    Per token it is trl GRPO's -min(r A, clip(r, 1-eps, 1+eps) A) with token advantages."""
    import torch

    ratio = torch.exp(logp - old_logp)
    per_token = -torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages)
    return masked_mean(per_token, mask), masked_mean(((ratio - 1).abs() > clip).float(), mask)


def value_loss(values, old_values, returns, mask, clip: float = VALUE_CLIP):
    """Clipped value loss: the worse of the new value and one kept within `clip` of the old."""
    import torch

    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


def completion_mask(completion_ids, stop_ids):
    """1 for each sampled token up to and including the first stop token (pad == eos is common,
    so padding cannot be told from a real end by id)."""
    import torch

    is_stop = torch.isin(completion_ids, torch.as_tensor(stop_ids, device=completion_ids.device)).long()
    return ((is_stop.cumsum(1) - is_stop) == 0).long()


def token_logprobs(model, input_ids, attention_mask, completion_len: int, temperature: float, value_head=None):
    """Log-probabilities of the last `completion_len` tokens under `model` at `temperature` (the
    sampling distribution), and the value head's estimate for the state before each of them.

    Positions come from the attention mask, as generate() computes them for left-padded prompts,
    so these log-probs are those of the distribution the tokens were sampled from (RoPE models do
    not notice the shift that left padding causes; models with absolute positions would).
    """
    import torch
    from trl.trainer.utils import selective_log_softmax

    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                logits_to_keep=completion_len + 1, output_hidden_states=value_head is not None)
    # The logit at position i predicts token i + 1: the kept window starts at the last prompt token.
    logits = out.logits[:, :-1].float()
    logp = selective_log_softmax(logits, input_ids[:, -completion_len:], temperature=temperature)
    if value_head is None:
        return logp, None
    hidden = out.hidden_states[-1][:, -completion_len - 1:-1]
    with torch.autocast(hidden.device.type, enabled=False):  # the head stays fp32 under bf16 autocast
        values = value_head(hidden.float()).squeeze(-1)
    return logp, values


# --------------------------------------------------------------------------- PPO


def run_ppo(cfg, show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train with PPO against rl.reward_model according to `cfg` (recipe: ppo); returns the run directory."""
    if callbacks:
        raise fail("PPO runs its own loop, so transformers TrainerCallbacks cannot attach to it",
                   "run without callbacks (metrics.jsonl has every logged step)")
    check(cfg)
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, get_scheduler
    from trl.trainer.utils import disable_dropout_in_model

    from tunesmith.hardware import recheck_threads
    from tunesmith.models import adapters

    # --- setup and data
    reward_path = resolve_reward_model(cfg.rl.reward_model, cfg.config_path)
    source, tokenizer, precision, prompts, _, report = _setup(cfg)
    reward_model, reward_tokenizer = load_reward_model(reward_path)
    run_dir, _, manifest = _start_run(cfg, source, precision, report)  # no checkpoints: never a resume
    manifest["reward_model"] = str(reward_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=precision[0] == "bf16")

    # --- model: policy = base + adapter; reference = the same with the adapter disabled
    base, base_dtype = _load_policy(cfg, source, precision)
    policy = adapters.apply(base, cfg.train.method, cfg.lora).to(device)
    # Dropout off: the log-probs of a rollout and of the first optimisation pass must agree (ratio 1).
    disable_dropout_in_model(policy)
    if cfg.train.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    value_head = torch.nn.Linear(policy.config.hidden_size, 1, device=device, dtype=torch.float32)
    torch.nn.init.zeros_(value_head.weight)  # V = 0 at the start: the first advantages are the rewards
    torch.nn.init.zeros_(value_head.bias)
    reward_model.to(device)
    params = [p for p in policy.parameters() if p.requires_grad] + list(value_head.parameters())
    t, r = cfg.train, cfg.rl
    rollout = t.batch_size * t.grad_accum  # prompts per step, one completion each
    steps = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * len(prompts) / rollout))
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    updates = steps * r.ppo_epochs
    scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=math.ceil(t.warmup_ratio * updates),
                              num_training_steps=updates)
    gen_eos = policy.generation_config.eos_token_id
    stop_ids = sorted({tokenizer.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])} - {None})
    # top_k=0 / top_p=1: sample from the plain softmax(logits / T) whose log-probs the loss uses.
    generation = GenerationConfig(do_sample=True, temperature=r.temperature, top_k=0, top_p=1.0,
                                  max_new_tokens=r.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=stop_ids, use_cache=True)
    manifest["parameters"] = {"trainable": sum(p.numel() for p in params),
                              "total": sum(p.numel() for p in policy.parameters()) + value_head.weight.numel() + 1}
    manifest["model"].update(base_dtype=base_dtype)
    manifest["ppo"] = {"rollout_prompts": rollout, "steps": steps, "gae_gamma": GAE_GAMMA, "gae_lambda": GAE_LAMBDA,
                       "value_clip": VALUE_CLIP, "value_coef": VALUE_COEF, "device": str(device)}
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)

    # --- train
    order = torch.Generator().manual_seed(cfg.seed)
    queue: list[int] = []
    bar = tqdm(total=steps, desc="ppo", unit="step", disable=not show_progress, dynamic_ncols=True)
    history, t0 = [], time.time()
    for step in range(1, steps + 1):
        while len(queue) < rollout:  # shuffled passes over the prompts
            queue += torch.randperm(len(prompts), generator=order).tolist()
        batch, queue = [prompts[i]["prompt"] for i in queue[:rollout]], queue[rollout:]

        # rollout: sample, score, and fix everything the loss compares against
        policy.eval()
        encoded = tokenizer.pad({"input_ids": _encode_prompts(tokenizer, batch)}, padding_side="left",
                                return_tensors="pt").to(device)
        with torch.no_grad(), torch.autocast(**amp):
            sequences = policy.generate(**encoded, generation_config=generation)
            completion_ids = sequences[:, encoded["input_ids"].shape[1]:]
            mask = completion_mask(completion_ids, stop_ids)
            attention = torch.cat([encoded["attention_mask"], mask], dim=1)
            T = completion_ids.shape[1]
            old_logp, old_values, ref_logp = [], [], []
            for i in range(0, rollout, t.batch_size):  # forward passes of batch_size rows
                rows = slice(i, i + t.batch_size)
                lp, v = token_logprobs(policy, sequences[rows], attention[rows], T, r.temperature, value_head)
                with policy.disable_adapter():
                    ref, _ = token_logprobs(policy, sequences[rows], attention[rows], T, r.temperature)
                old_logp.append(lp), old_values.append(v), ref_logp.append(ref)
            old_logp, old_values, ref_logp = torch.cat(old_logp), torch.cat(old_values), torch.cat(ref_logp)
            texts = [tokenizer.decode(ids[m.bool()], skip_special_tokens=True).strip()
                     for ids, m in zip(completion_ids, mask)]
            scores = _score(reward_model, reward_tokenizer, batch, texts, device)
            # Per-token reward: the KL penalty everywhere, the reward model's score on the last token.
            kl = (old_logp - ref_logp) * mask
            rewards = -r.kl_coef * kl
            rewards[torch.arange(rollout, device=device), mask.sum(1) - 1] += scores
            advantages, returns = gae(rewards, old_values, mask)
            advantages = masked_whiten(advantages, mask)

        # optimise: ppo_epochs passes, each one optimizer step over grad_accum micro-batches
        policy.train()
        pg_losses, v_losses, clipfracs = [], [], []
        for _ in range(r.ppo_epochs):
            optimizer.zero_grad(set_to_none=True)
            for rows in torch.randperm(rollout, generator=order).split(t.batch_size):
                rows = rows.to(device)
                with torch.autocast(**amp):
                    logp, values = token_logprobs(policy, sequences[rows], attention[rows], T, r.temperature,
                                                  value_head)
                pg, clipfrac = policy_loss(logp, old_logp[rows], advantages[rows], mask[rows], r.clip_range)
                vf = value_loss(values, old_values[rows], returns[rows], mask[rows])
                # Each micro-batch's mean weighs by its share of the rollout, so the accumulated
                # gradient is that of the whole batch.
                ((pg + VALUE_COEF * vf) * len(rows) / rollout).backward()
                pg_losses.append(pg.item()), v_losses.append(vf.item()), clipfracs.append(clipfrac.item())
            if t.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            optimizer.step()
            scheduler.step()

        row = {"step": step, "score": scores.mean().item(), "kl": kl.sum(1).mean().item(),
               "policy_loss": sum(pg_losses) / len(pg_losses), "value_loss": sum(v_losses) / len(v_losses),
               "clipfrac": sum(clipfracs) / len(clipfracs), "completion_length": mask.sum(1).float().mean().item(),
               "learning_rate": scheduler.get_last_lr()[0]}
        history.append(row)
        if step == 1 or step % t.logging_steps == 0 or step == steps:
            runs.append_metrics(run_dir, row)
        recheck_threads()
        bar.update(1)
        bar.set_postfix({"score": f"{row['score']:.3g}", "kl": f"{row['kl']:.3g}"}, refresh=False)
    bar.close()
    seconds = time.time() - t0

    # --- save: the adapter (plain peft) and the value head beside it
    out = run_dir / "adapter"
    runs.save_trained(None, policy, tokenizer, out)
    save_file(value_head.state_dict(), str(run_dir / "value_head.safetensors"))
    final = {"steps": steps, "train_seconds": round(seconds, 1), "score_first": history[0]["score"],
             "score_last": history[-1]["score"], "kl_last": history[-1]["kl"],
             "policy_loss_last": history[-1]["policy_loss"], "value_loss_last": history[-1]["value_loss"]}
    runs.complete(run_dir, manifest, final, None, out, value_head="value_head.safetensors")
    return run_dir


def _score(reward_model, tokenizer, prompts: list[list[dict]], completions: list[str], device):
    """The reward model's score of each (prompt, completion), rendered as a conversation by the
    reward model's own chat template (as trl's RewardTrainer rendered its training pairs)."""
    import torch

    convs = [p + [{"role": "assistant", "content": c}] for p, c in zip(prompts, completions)]
    if tokenizer.chat_template:
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in convs]
    else:  # a plain classifier: the turns as text
        texts = ["\n".join(m["content"] for m in c) for c in convs]
    enc = tokenizer(texts, padding=True, padding_side="right", truncation=True, return_tensors="pt",
                    add_special_tokens=not tokenizer.chat_template).to(device)
    with torch.no_grad():
        return reward_model(**enc).logits[:, 0].float()
