"""From a run's data section to tokenized train/validation rows, with a report of what happened."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tunesmith.data.formats import Example, load_examples
from tunesmith.data.templates import PrepStats, Tokenized, tokenize_examples
from tunesmith.errors import TunesmithError, fail


@dataclass
class Prepared:
    train: list[Tokenized]
    validation: list[Tokenized]
    train_stats: PrepStats
    validation_stats: PrepStats | None

    def report(self) -> dict:
        return {"train": self.train_stats.summary(),
                "validation": self.validation_stats.summary() if self.validation_stats else None}


def split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic random hold-out of `fraction` of the rows (at least one row when > 0)."""
    if fraction <= 0:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(fraction * len(examples)))
    if n_val >= len(examples):
        raise fail(f"validation_fraction {fraction} leaves no training rows out of {len(examples)}",
                   "use a smaller fraction or more data", field="data.validation_fraction")
    held = set(order[:n_val])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def prepare(data, tokenizer, seed: int) -> Prepared:
    """Load, split and tokenize. `data` is the config's DataConfig section."""
    train_ex = load_examples(data.train, data.format, data.system_prompt)
    if data.validation:
        val_ex = load_examples([data.validation], data.format, data.system_prompt)
    else:
        train_ex, val_ex = split(train_ex, data.validation_fraction, seed)

    def tok(examples, what):
        rows, stats, problems = tokenize_examples(tokenizer, examples, data.max_length, data.overlong, data.train_on)
        if problems:
            raise TunesmithError(problems[:50], title=f"{len(problems)} {what} rows could not be tokenized:")
        return rows, stats

    train_rows, train_stats = tok(train_ex, "training")
    if not train_rows:
        raise fail(f"no training rows left after tokenization ({train_stats.dropped_overlong} longer than "
                   f"max_length={data.max_length}, {train_stats.dropped_no_loss} with no trained tokens)",
                   "raise data.max_length or set data.overlong=truncate", field="data.max_length")
    val_rows, val_stats = tok(val_ex, "validation") if val_ex else ([], None)
    return Prepared(train_rows, val_rows, train_stats, val_stats)
