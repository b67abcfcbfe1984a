"""From a run's data section to tokenized train/validation rows, with a report of what happened."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.data.formats import Example, task_examples
from tunesmith.data.load import LoadReport, load_examples
from tunesmith.data.templates import PrepStats, Tokenized, tokenize_examples, tokenize_text
from tunesmith.errors import Problem, TunesmithError, fail


@dataclass
class Prepared:
    train: list[Tokenized]
    validation: list[Tokenized]
    train_stats: PrepStats
    validation_stats: PrepStats | None
    load: dict = field(default_factory=dict)  # LoadReport summaries and the mix, by split

    def report(self) -> dict:
        return {"load": self.load, "train": self.train_stats.summary(),
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


def mix(groups: list[tuple[str, float, list[Example]]], seed: int) -> tuple[list[Example], list[dict]]:
    """Resample groups so that each holds its weight's share of the total row count.

    A group above its share is subsampled, one below it is repeated (whole copies, then a random
    remainder); the total stays the sum of the group sizes. Deterministic under the seed.
    """
    total = sum(len(rows) for _, _, rows in groups)
    weight_sum = sum(w for _, w, _ in groups)
    rng = random.Random(seed)
    out, table = [], []
    for name, weight, rows in groups:
        target = round(weight / weight_sum * total)
        if not rows:
            table.append({"source": name, "weight": weight, "rows": 0, "used": 0})
            continue
        picked = rows * (target // len(rows)) + rng.sample(rows, target % len(rows))
        out += picked
        table.append({"source": name, "weight": weight, "rows": len(rows), "used": len(picked)})
    rng.shuffle(out)
    return out, table


def load_training_examples(data, seed: int) -> tuple[list[Example], dict]:
    """Every training row of `data.train` and `data.sources`, curated when data.clean is enabled,
    not yet mixed (see load_all). info["group_of"] maps each file to its source group."""
    groups, group_of = [], {}
    specs = ([(", ".join(data.train), 1.0, data.train, data.format, data.columns)] if data.train else []) + [
        (s.path, s.weight, [s.path], s.format, s.columns) for s in data.sources]
    examples: list[Example] = []
    report = LoadReport()
    for name, weight, paths, fmt, columns in specs:
        rows = load_examples(paths, fmt, data.system_prompt, columns=columns or None, on_error=data.on_error,
                             max_row_bytes=data.max_row_bytes, report=report)
        groups.append({"source": name, "weight": weight})
        group_of.update({str(p): len(groups) - 1 for p in paths})
        examples += rows
    info = {"rows": report.summary(), "groups": groups}
    if data.clean.enabled:  # before mixing: dedup must not undo the up-sampling that mixing does
        from tunesmith.data.curate import curate

        examples, info["clean"] = curate(examples, data.clean)
    info["group_of"] = group_of
    return examples, info


@dataclass
class Loaded:
    train: list[Example]
    validation: list[Example]
    info: dict


def load_all(data, seed: int) -> Loaded:
    """Read (no tokenizer needed), curate, hold out validation, then mix the training part.

    The order matters: validation is held out from unique rows before up-sampling, so no row can
    sit in both splits, and dedup runs before mixing, so it cannot undo the weights.
    """
    check_files(data)
    train_ex, load_info = load_training_examples(data, seed)
    val_info = None
    if data.validation:
        val_report = LoadReport()
        val_ex = load_examples([data.validation], data.format, data.system_prompt, columns=data.columns or None,
                               on_error=data.on_error, max_row_bytes=data.max_row_bytes, report=val_report)
        val_info = val_report.summary()
    else:
        train_ex, val_ex = split(train_ex, data.validation_fraction, seed)
    group_of, groups = load_info.pop("group_of"), load_info.pop("groups")
    load_info["mix"] = []
    if data.sources:
        by_group = [[] for _ in groups]
        for ex in train_ex:
            by_group[group_of[ex.file]].append(ex)
        train_ex, load_info["mix"] = mix([(g["source"], g["weight"], rows) for g, rows in zip(groups, by_group)],
                                         seed)
    return Loaded(train_ex, val_ex, {"train": load_info, "validation": val_info})


def check_kinds(examples: list[Example], kinds: tuple[str, ...]) -> None:
    wrong = [e for e in examples if e.kind not in kinds]
    if wrong:
        e = wrong[0]
        raise fail(f"{len(wrong)} rows are {e.kind} rows; this recipe trains on {' / '.join(kinds)} rows",
                   f"{e.kind} rows train with {_RECIPES_FOR[e.kind]}; or give this recipe {' / '.join(kinds)} data",
                   file=e.file, line=e.line)


_RECIPES_FOR = {"chat": "recipe: sft", "text": "recipe: cpt", "preference": "recipe: dpo, orpo, simpo or reward",
                "kto": "recipe: kto", "classification": "recipe: classify (or sft, text -> label)",
                "prompt": "recipe: grpo or ppo", "vision": "recipe: vlm"}


def check_files(data) -> None:
    """Every file the data section names exists (a missing file is never a skippable 'bad row')."""
    missing = [p for p in data_files(data) + list(data.clean.decontaminate)
               + ([data.clean.toxicity_wordlist] if data.clean.toxicity_wordlist else []) if not Path(p).is_file()]
    if missing:
        raise TunesmithError([Problem("file not found", "check the path in the data section", file=p)
                              for p in missing])


def data_files(data) -> list[str]:
    """Every file a data section reads (hashed into the run manifest)."""
    return list(data.train) + [s.path for s in data.sources] + ([data.validation] if data.validation else [])


CACHE_VERSION = 1  # bump when Prepared or tokenization changes shape


def cache_key(data, tokenizer, seed: int, kinds: tuple[str, ...]) -> str:
    """sha256 over everything prepared data depends on: every file read (content hashes), the data
    section, the tokenizer (vocabulary, merges, special tokens, chat template), seed and kinds."""
    import dataclasses

    from tunesmith import __version__
    from tunesmith.models.loading import file_sha256

    h = hashlib.sha256(f"v{CACHE_VERSION}|{__version__}|{seed}|{kinds}".encode())
    if data.clean.enabled:  # the shipped tables (PII patterns, word lists, ...) shape the result too
        for table in sorted(Path(__file__).parent.glob("*.yaml")):
            h.update(table.read_bytes())
    h.update(json.dumps(dataclasses.asdict(data), sort_keys=True, default=str).encode())
    files = data_files(data) + list(data.clean.decontaminate) + (
        [data.clean.toxicity_wordlist] if data.clean.toxicity_wordlist else [])
    for f in files:
        h.update(file_sha256(f).encode())
    if data.clean.enabled and data.clean.toxicity != "off" and data.clean.toxicity_classifier:
        # The classifier's weights decide which rows go: hash the folder's files, not just its path.
        for f in sorted(Path(data.clean.toxicity_classifier).rglob("*")):
            if f.is_file():
                h.update(f"{f.name}:{file_sha256(f)}".encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))).encode())
    h.update(f"{tokenizer.chat_template}|{tokenizer.eos_token}|{tokenizer.pad_token}".encode())
    return h.hexdigest()


def prepare(data, tokenizer, seed: int, kinds: tuple[str, ...] = ("chat",), loaded: Loaded | None = None,
            extra: list[Example] | None = None) -> Prepared:
    """Load (unless `loaded` is given), split and tokenize; cached when data.cache is on.
    `data` is the config's DataConfig section; `kinds` the record kinds the recipe trains on;
    `extra`: rows added to the training split only, after the split (the audit's canaries)."""
    if extra:  # never cached: the cache key knows the data section, not these rows
        loaded = loaded or load_all(data, seed)
        loaded = Loaded(loaded.train + list(extra), loaded.validation, {**loaded.info, "extra_rows": len(extra)})
    if not data.cache or loaded is not None:
        return _prepare(data, tokenizer, seed, kinds, loaded)
    from tunesmith.models.loading import cache_root

    check_files(data)  # before hashing them: a missing file gets its message, not a traceback
    path = cache_root() / "data" / f"{cache_key(data, tokenizer, seed, kinds)}.pkl"
    if path.exists():
        try:
            with open(path, "rb") as f:
                prepared = pickle.load(f)
            prepared.load = {**prepared.load, "cache": {"hit": True, "path": str(path)}}
            return prepared
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass  # a damaged entry is rebuilt
    prepared = _prepare(data, tokenizer, seed, kinds, None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(prepared, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written entry under the real name
    except OSError:
        pass  # a read-only cache only costs the work next time
    prepared.load = {**prepared.load, "cache": {"hit": False, "path": str(path)}}
    return prepared


def _prepare(data, tokenizer, seed: int, kinds: tuple[str, ...], loaded: Loaded | None) -> Prepared:
    loaded = loaded or load_all(data, seed)
    train_ex, val_ex = loaded.train, loaded.validation
    check_kinds(train_ex + val_ex, kinds)
    if kinds == ("text",):  # continued pre-training: documents concatenated and windowed
        train_rows, train_stats = tokenize_text(tokenizer, train_ex, data.max_length, data.stride)
        val_rows, val_stats = tokenize_text(tokenizer, val_ex, data.max_length) if val_ex else ([], None)
        if not train_rows:
            raise fail("no training text", "give data.train a .txt file or rows with a 'text' field")
        return Prepared(train_rows, val_rows, train_stats, val_stats, load=loaded.info)
    train_ex, val_ex = task_examples(train_ex, data.task_prompt), task_examples(val_ex, data.task_prompt)

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
    return Prepared(train_rows, val_rows, train_stats, val_stats, load=loaded.info)
