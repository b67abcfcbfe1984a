"""`auto` hyperparameters: train.epochs, learning_rate, batch_size, eval_steps and early stopping
chosen from the recipe, the method and the data, and written back as concrete values.

A config may say `auto` for these; `resolve(cfg, shape)` returns the config with every `auto`
replaced and `cfg.auto` holding {key: the rule that chose it}, so the run directory's config.yaml
has the values (a rerun of it is the same run) and manifest.json has the rules. Rules are tables
(STYLE rule 7), measured on the shared public samples with the embedded models
(bench/results/presets.md, bench/results/efficacy.md); each says why in one line.

`train.time_budget` (minutes) caps the planned steps from a few timed steps (estimate.fit_budget),
and `budget_callback` stops the run at the budget whatever the estimate said.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from tunesmith.config_checks import AUTO

# recipe -> family whose rules apply
FAMILY = {"sft": "sft", "cpt": "cpt", "classify": "classify", "dpo": "preference", "kto": "preference",
          "orpo": "preference", "simpo": "preference", "reward": "reward", "grpo": "rl", "ppo": "rl",
          "vlm": "sft"}  # vision-language SFT follows the SFT rules

# (family, method group) -> peak learning rate at the reference batch (REFERENCE_BATCH rows per step)
LEARNING_RATE = {
    ("sft", "lora"): 5e-4, ("sft", "full"): 2e-5,
    ("cpt", "lora"): 7e-4, ("cpt", "full"): 2e-5,
    ("classify", "lora"): 5e-4, ("classify", "full"): 3e-5,
    ("preference", "lora"): 5e-5, ("preference", "full"): 1e-6,
    ("reward", "lora"): 1e-4, ("reward", "full"): 1e-5,
    ("rl", "lora"): 1e-5, ("rl", "full"): 1e-6,
}
# peft methods that train far fewer, differently scaled parameters than LoRA: their papers' rates
METHOD_RATE = {"vera": 1e-2, "ia3": 3e-3, "prompt_tuning": 3e-2, "prefix_tuning": 1e-2, "p_tuning": 1e-2}
REFERENCE_BATCH = 16  # rows per optimizer step the rates above were measured at

# family -> (epochs for a mid-sized set, fewest examples seen, most examples seen, most epochs)
# OpenAI's fine-tuning API uses the same shape of rule (3 epochs, at least ~100 and at most ~25k
# examples seen); the numbers here are ours, per recipe family.
EPOCHS = {"sft": (3, 600, 25_000, 10), "cpt": (1, 400, 200_000, 3), "classify": (6, 4_000, 100_000, 10),
          "preference": (1, 300, 10_000, 3), "reward": (1, 300, 10_000, 3), "rl": (1, 64, 2_000, 2)}

# Tokens per micro-batch that keep a CPU's matmuls busy without padding waste, and the largest batch.
BATCH_TOKENS = {"cpu": 2048, "cuda": 16384}
MAX_BATCH = {"cpu": 32, "cuda": 64}
MIN_STEPS_PER_EPOCH = 8  # a small set still gets this many updates per pass

EVALS_PER_RUN = 8  # periodic evaluations of an auto schedule with validation data
MIN_STEPS_FOR_PERIODIC_EVAL = 20
PATIENCE = 3  # evaluations without improvement before an auto-scheduled run stops
EARLY_STOPPING_RECIPES = ("sft", "cpt", "classify", "vlm")  # recipes whose loop stops early and keeps the best


@dataclass(frozen=True)
class DataShape:
    """What the rules read from the training data."""

    rows: int  # training examples (windows for cpt, rows otherwise) after the validation split
    median_tokens: int
    max_tokens: int
    has_validation: bool


def pending(cfg) -> list[str]:
    """The dotted keys still set to auto."""
    t = cfg.train
    keys = {"train.epochs": t.epochs, "train.learning_rate": t.learning_rate, "train.batch_size": t.batch_size,
            "train.eval_steps": t.eval_steps, "train.early_stopping_patience": t.early_stopping_patience}
    return [k for k, v in keys.items() if v == AUTO]


def needs_data(cfg) -> bool:
    """Whether resolving needs the data's shape (row count, lengths), not only the config."""
    return bool(set(pending(cfg)) - {"train.learning_rate"})


def _group(method: str) -> str:
    return "full" if method == "full" else "lora"


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batch_size(cfg, shape: DataShape) -> tuple[int, str]:
    dev = _device()
    width = max(shape.median_tokens, 1)
    by_tokens = max(1, BATCH_TOKENS[dev] // width)
    by_rows = max(1, shape.rows // MIN_STEPS_PER_EPOCH)
    b = 2 ** int(math.log2(max(1, min(by_tokens, by_rows, MAX_BATCH[dev]))))
    why = (f"{BATCH_TOKENS[dev]} tokens per batch on {dev} / median row {width} tokens, at most "
           f"{MAX_BATCH[dev]} and at most rows/{MIN_STEPS_PER_EPOCH} ({shape.rows} rows), rounded down to a power of 2")
    if cfg.recipe == "grpo":  # a step's completions must split into whole groups
        g = cfg.rl.num_generations
        b = max(g, b // g * g)
        why += f", a multiple of rl.num_generations={g}"
    return b, why


def learning_rate(cfg, batch: int) -> tuple[float, str]:
    family, method = FAMILY[cfg.recipe], cfg.train.method
    if method in METHOD_RATE:
        return METHOD_RATE[method], f"{method}: its usual rate (it trains few, differently scaled parameters)"
    base = LEARNING_RATE[(family, _group(method))]
    per_step = batch * cfg.train.grad_accum
    scale = min(2.0, max(0.5, math.sqrt(per_step / REFERENCE_BATCH)))
    lr = float(f"{base * scale:.3g}")
    return lr, (f"{family} with {_group(method)}: {base:g} at {REFERENCE_BATCH} rows per step, x sqrt({per_step}/"
                f"{REFERENCE_BATCH}) = x{scale:.2f} (clipped to 0.5-2)")


def epochs(cfg, shape: DataShape) -> tuple[float, str]:
    family = FAMILY[cfg.recipe]
    base, low, high, most = EPOCHS[family]
    n = max(shape.rows, 1)
    if n * base < low:
        e = min(most, math.ceil(low / n))
        why = f"{n} rows x {base} epochs < {low} examples seen: {e} epochs (at most {most})"
    elif n * base > high:
        e = max(1, round(high / n, 2)) if high / n >= 1 else round(high / n, 3)
        why = f"{n} rows x {base} epochs > {high} examples seen: {e} epochs"
    else:
        e, why = base, f"{family}: {base} epochs for {n} rows ({low}-{high} examples seen)"
    return float(e), why


def steps_for(rows: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int) -> int:
    """Optimizer steps of a run, as transformers' Trainer counts them (5.x, one process): max_steps
    when set, else ceil(epochs x updates per epoch), where a partial accumulation at the end of an
    epoch still counts as an update."""
    if max_steps > 0:
        return max_steps
    batches = math.ceil(rows / batch_size)  # the DataLoader keeps the last, short batch
    per_epoch = max(batches // grad_accum + int(batches % grad_accum > 0), 1)
    return math.ceil(epochs * per_epoch)


def evaluation(cfg, shape: DataShape, steps: int) -> dict[str, tuple[int, str]]:
    out = {}
    t = cfg.train
    periodic = shape.has_validation and steps >= MIN_STEPS_FOR_PERIODIC_EVAL
    if t.eval_steps == AUTO:
        if not shape.has_validation:
            out["train.eval_steps"] = (0, "no validation data: no periodic evaluation")
        elif not periodic:
            out["train.eval_steps"] = (0, f"{steps} steps < {MIN_STEPS_FOR_PERIODIC_EVAL}: evaluate at the end only")
        else:
            out["train.eval_steps"] = (max(1, steps // EVALS_PER_RUN),
                                       f"{EVALS_PER_RUN} evaluations over {steps} steps")
    eval_steps = out.get("train.eval_steps", (t.eval_steps,))[0]
    if t.early_stopping_patience == AUTO:
        if cfg.recipe not in EARLY_STOPPING_RECIPES or cfg.privacy.enabled:
            out["train.early_stopping_patience"] = (0, f"recipe {cfg.recipe}"
                                                    f"{' with DP' if cfg.privacy.enabled else ''} does not stop early")
        elif not eval_steps:
            out["train.early_stopping_patience"] = (0, "no periodic evaluation")
        else:
            out["train.early_stopping_patience"] = (PATIENCE, f"stop after {PATIENCE} evaluations without a better "
                                                    "validation metric (accuracy for classify, else eval loss), "
                                                    "keep the best checkpoint")
    return out


def resolve(cfg, shape: DataShape | None = None):
    """The config with every auto value concrete and cfg.auto holding the rules; `shape` is needed
    when needs_data(cfg). Idempotent: a config without autos comes back as it is."""
    if not pending(cfg):
        return cfg
    if shape is None and needs_data(cfg):
        shape = data_shape(cfg)
    t = cfg.train
    chosen: dict[str, tuple] = {}
    b = t.batch_size
    if b == AUTO:
        chosen["train.batch_size"] = batch_size(cfg, shape)
        b = chosen["train.batch_size"][0]
    if t.learning_rate == AUTO:
        chosen["train.learning_rate"] = learning_rate(cfg, b)
    e = t.epochs
    if e == AUTO:
        if t.max_steps > 0:
            chosen["train.epochs"] = (1.0, f"train.max_steps={t.max_steps} sets the length")
        else:
            chosen["train.epochs"] = epochs(cfg, shape)
        e = chosen["train.epochs"][0]
    if shape is not None:  # None only when the learning rate alone was auto
        chosen.update(evaluation(cfg, shape, steps_for(shape.rows, b, t.grad_accum, e, t.max_steps)))
    return _apply(cfg, chosen)


def resumed(cfg):
    """When `cfg` would resume an unfinished run (a checkpoint, no overwrite), the values that run
    resolved, so that a resumed run continues as it started (a time budget's estimate or a range
    test would not give the same numbers twice); else `cfg` as it is."""
    import yaml

    from tunesmith.runs import CONFIG_FILE, last_checkpoint, read_manifest, run_dir_for

    run_dir = run_dir_for(cfg)
    manifest = read_manifest(run_dir)
    if cfg.overwrite or not manifest or manifest.get("status") == "completed" or not last_checkpoint(run_dir):
        return cfg
    try:
        old = yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return cfg
    auto, train = old.get("auto") or {}, old.get("train") or {}
    names = [k.removeprefix("train.") for k in auto if k.startswith("train.")]
    values = {name: train[name] for name in names if name in train}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **values), auto=auto) if values else cfg


def _apply(cfg, chosen: dict[str, tuple]):
    train = dataclasses.replace(cfg.train, **{k.split(".", 1)[1]: v for k, (v, _) in chosen.items()})
    return dataclasses.replace(cfg, train=train, auto={**cfg.auto, **{k: why for k, (_, why) in chosen.items()}})


def data_shape(cfg) -> DataShape:
    """Rows and token lengths of the training split as the recipe will see it (tokenized)."""
    from tunesmith.data.inspect import split_report
    from tunesmith.data.prepare import check_kinds, load_all
    from tunesmith.models.loading import load_tokenizer
    from tunesmith.models.loading import resolve as resolve_model
    from tunesmith.recipes.registry import KINDS

    loaded = load_all(cfg.data, cfg.seed)
    check_kinds(loaded.train + loaded.validation, KINDS[cfg.recipe])  # the recipe's refusal, before tokenizing
    tok = load_tokenizer(resolve_model(cfg.model.name, cfg.model.gguf_file), cfg.model.chat_template,
                         cfg.model.trust_remote_code)
    report = split_report(loaded.train, tok, cfg.data, KINDS[cfg.recipe])
    return shape_from_report(report, bool(loaded.validation), cfg)


def shape_from_report(report: dict, has_validation: bool, cfg) -> DataShape:
    """The shape from `tunesmith validate`'s split report of the training rows."""
    if cfg.recipe == "cpt":  # training rows are max_length windows over the concatenated text
        return DataShape(rows=int(report.get("windows", 0)), median_tokens=cfg.data.max_length,
                         max_tokens=cfg.data.max_length, has_validation=has_validation)
    return DataShape(rows=int(report.get("kept", 0)), median_tokens=int(report.get("length_median", 0)),
                     max_tokens=int(report.get("length_max", 0)), has_validation=has_validation)


def budget_callback(minutes: float):
    """A TrainerCallback that ends training (saving first) once `minutes` have passed."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()

        def on_step_end(self, args, state, control, **kw):
            if time.monotonic() - self.t0 > minutes * 60:
                control.should_training_stop = True
                control.should_save = True
            return control

    return TimeBudget()


def value(cfg, key: str):
    """The config's value at a dotted key (train.learning_rate)."""
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def describe(cfg) -> list[str]:
    """One line per resolved value: key = value (rule)."""
    out = []
    for key, why in cfg.auto.items():
        v = value(cfg, key)
        out.append(f"{key} = {v:g} ({why})" if isinstance(v, float) else f"{key} = {v} ({why})")
    return out
