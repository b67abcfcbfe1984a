"""Rewards for the RL recipes: Python reward functions (GRPO) and reward models (GRPO and PPO).

Loading is checked before any policy model loads, and every problem is collected and raised at
once; `check` is cheap enough for `tunesmith validate`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import Collector, TunesmithError, fail

# Keyword names trl's GRPOTrainer passes to reward functions itself: a data column may not reuse one.
TRL_REWARD_KWARGS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
                     "environments")


def check(cfg) -> None:
    """The reward functions named by rl.reward_functions import and take the right arguments. The
    config-only RL rules (whole GRPO groups per step, PPO's method and reward) are config checks."""
    if cfg.rl.reward_functions:
        load_reward_functions(cfg.rl.reward_functions, cfg.config_path)


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


def check_reward_columns(funcs: list, specs: list[str], columns: set[str]) -> None:
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


def score(reward_model, tokenizer, prompts: list[list[dict]], completions: list[str], device):
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
