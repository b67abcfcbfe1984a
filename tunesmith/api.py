"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import RunConfig, load_config


def _config(config: RunConfig | str | Path | dict, overrides: list[str] | dict | None) -> RunConfig:
    if isinstance(config, RunConfig):
        if overrides:
            from tunesmith.config import to_dict

            raw = to_dict(config)
            raw.pop("config_path", None)
            return load_config(raw, overrides)
        return config
    return load_config(config, overrides)


def train(config: RunConfig | str | Path | dict, overrides: list[str] | dict | None = None,
          show_progress: bool = True, callbacks: tuple = ()) -> Path:
    """Fine-tune as the config says; returns the run directory. `callbacks`: extra transformers
    TrainerCallbacks (a sweep's pruning hook, say)."""
    from tunesmith.recipes import recipe

    cfg = _config(config, overrides)
    if cfg.data.on_error == "fail":  # every bad row at once, before a model loads (the rows `validate` names)
        from tunesmith.data.validate import check_files, config_files

        checked = check_files(config_files(cfg.data), cfg.data.max_row_bytes)
        checked.raise_if_errors()
        if checked.warnings and show_progress:  # named once, as `data validate` names them; training goes on
            import sys

            for w in checked.warnings[:10]:
                print(w.diagnostic(), file=sys.stderr)
            if checked.report.n_warnings > 10:
                print(f"... {checked.report.n_warnings - 10} more data warnings (tunesmith data validate lists "
                      "them all)", file=sys.stderr)
    if cfg.eval.suite:  # a broken suite is reported now, not after hours of training
        from tunesmith.eval.tasks import load_suite

        load_suite(cfg.eval.suite, cfg.eval.limit)
    run_dir = recipe(cfg.recipe)(cfg, show_progress=show_progress, callbacks=callbacks)
    from tunesmith.runs import is_main_process

    if cfg.eval.suite and is_main_process():
        evaluate(run_dir, cfg.eval.suite, limit=cfg.eval.limit, threshold=cfg.eval.threshold,
                 samples=cfg.eval.samples, judge=cfg.eval.judge, dtype=cfg.eval.dtype, show_progress=show_progress)
    return run_dir


def evaluate(run_or_model: str | Path, suite: str | Path, *, out: str | Path | None = None,
             limit: int | None = None, threshold: float = 0.05, compare_base: bool = True,
             judge: str | None = None, samples: int = 3, dtype: str = "float32",
             show_progress: bool = True) -> Path:
    """Run an evaluation suite; for a run directory on its base and tuned model side by side.
    Returns the folder with report.html, report.md and eval/results.json."""
    from tunesmith.eval.run import evaluate as _evaluate

    return _evaluate(run_or_model, suite, out_dir=out, limit=limit, threshold=threshold,
                     compare_base=compare_base, judge=judge, samples=samples, dtype=dtype,
                     show_progress=show_progress)


def report(runs: list[str | Path], *, out: str | Path | None = None, threshold: float = 0.05) -> tuple[Path, Path]:
    """Re-render one evaluated run's report, or compare several runs side by side (written to `out`)."""
    from tunesmith.eval.run import compare_runs, write_report

    if len(runs) == 1 and out is None:
        return write_report(Path(runs[0]), threshold=threshold)
    return compare_runs(list(runs), out or Path("reports") / "-vs-".join(Path(r).name for r in runs),
                        threshold=threshold)


def validate(config: RunConfig | str | Path | dict, overrides: list[str] | dict | None = None,
             kinds: tuple[str, ...] | None = None) -> dict:
    """Pre-flight: config, model and data checked, data tokenized and summarised; no training.

    Raises TunesmithError (with file:line for data) listing every bad row, unless data.on_error=skip.
    `kinds`: the record kinds the run's recipe trains on (None: any kind, for data-only checks).
    """
    from dataclasses import replace

    from tunesmith.data.formats import task_examples
    from tunesmith.data.inspect import statistics
    from tunesmith.data.prepare import check_kinds, load_all
    from tunesmith.data.templates import PrepStats, Tokenized, tokenize_examples, tokenize_text
    from tunesmith.models.loading import load_tokenizer, resolve

    cfg = _config(config, overrides)
    # Rows first: a bad data file is reported without waiting for a tokenizer to load.
    loaded = load_all(cfg.data, cfg.seed)
    if kinds:
        check_kinds(loaded.train + loaded.validation, kinds)
    if kinds and cfg.recipe in ("grpo", "ppo"):  # reward functions import, batches hold whole groups
        from tunesmith.recipes.rl import check as check_rl

        check_rl(cfg)
    if cfg.eval.suite:
        from tunesmith.eval.tasks import load_suite

        load_suite(cfg.eval.suite, cfg.eval.limit)
    source = resolve(cfg.model.name, cfg.model.gguf_file)
    tok = load_tokenizer(source, cfg.model.chat_template, cfg.model.trust_remote_code)
    report = {"config": cfg.config_path, "model": {"spec": source.spec, "kind": source.kind, "path": source.path},
              "load": loaded.info, "data": {}, "max_length": cfg.data.max_length}
    if cfg.model.quantization != "none":  # a 4/8-bit path that is wrong or missing here is said now, not mid-run
        from tunesmith.models.quant import preflight

        report["quantization"] = preflight(cfg.model.quantization)
    for name, examples in (("train", loaded.train), ("validation", loaded.validation)):
        if not examples:
            continue
        if kinds == ("text",):  # continued pre-training: windows over the concatenated documents
            rows, stats = tokenize_text(tok, examples, cfg.data.max_length, cfg.data.stride)
            report["data"][name] = {**stats.summary(), "windows": len(rows), "kinds": {"text": len(examples)},
                                    "template_problems": []}
            continue
        if kinds and "chat" in kinds:  # sft: classification rows are text -> label tasks
            examples = task_examples(examples, cfg.data.task_prompt)
        convs = [replace(e, messages=_conversation_view(e)) for e in examples]
        chats = [e for e in convs if e.messages is not None]
        rows, stats, problems = tokenize_examples(tok, chats, cfg.data.max_length, cfg.data.overlong,
                                                  cfg.data.train_on) if chats else ([], PrepStats(), [])
        for orig, e in zip(examples, convs):  # raw text, classification and prompt rows: lengths only
            if e.messages is None:
                text = (tok.apply_chat_template(orig.messages, tokenize=False, add_generation_prompt=True)
                        if orig.kind == "prompt" else e.extra["text"])
                ids = tok(text, add_special_tokens=False)["input_ids"]
                stats.rows += 1
                stats.lengths.append(len(ids))
                if len(ids) <= cfg.data.max_length or cfg.data.overlong == "truncate":
                    stats.kept += 1
                    stats.tokens += min(len(ids), cfg.data.max_length)
                    rows.append(Tokenized(ids[:cfg.data.max_length], list(ids[:cfg.data.max_length])))
                else:
                    stats.dropped_overlong += 1
        report["data"][name] = {**stats.summary(), "kinds": dict(_count(e.kind for e in examples)),
                                "template_problems": [str(p) for p in problems[:20]],
                                "statistics": statistics(examples, stats, rows, tok, cfg.data.max_length,
                                                         cfg.data.overlong)}
    return report


def _count(items):
    from collections import Counter

    return Counter(items)


def _conversation_view(ex) -> list[dict] | None:
    """The conversation a record trains on (None for raw text and classification rows)."""
    if ex.kind == "chat":
        return ex.messages
    if ex.kind == "preference":
        return ex.messages + ex.extra["chosen"]
    if ex.kind == "kto":
        return ex.messages + ex.extra["completion"]
    return None


def data_config(target: str | Path, overrides: list[str] | dict | None = None) -> RunConfig:
    """A run config for a YAML file, or a minimal one around a bare data file."""
    from tunesmith.data.readers import SUFFIXES

    path = Path(target)
    if path.suffix.lower() in SUFFIXES:
        return load_config({"name": "data", "data": {"train": [str(path.resolve())]}}, overrides)
    return load_config(path, overrides)


def preview(target: str | Path, overrides: list[str] | dict | None = None, n: int = 3) -> tuple[list, list, object]:
    """The first `n` training rows tokenized: (examples, tokenized rows, tokenizer)."""
    from dataclasses import replace

    from tunesmith.data.prepare import load_all
    from tunesmith.data.templates import tokenize_conversation
    from tunesmith.models.loading import load_tokenizer, resolve

    cfg = data_config(target, overrides)
    loaded = load_all(cfg.data, cfg.seed)
    tok = load_tokenizer(resolve(cfg.model.name, cfg.model.gguf_file), cfg.model.chat_template)
    chats = [replace(e, messages=_conversation_view(e)) for e in loaded.train]
    chats = [e for e in chats if e.messages is not None][:n]
    return chats, [tokenize_conversation(tok, e.messages, cfg.data.train_on) for e in chats], tok


def data_clean(target: str | Path, overrides: list[str] | dict | None = None, out: str | Path | None = None) -> Path:
    """Run the data.clean steps on a data file or a config's training data; writes the cleaned rows,
    a report and a manifest (hashes before and after) into `out`. Returns `out`."""
    import dataclasses
    import json

    from tunesmith.data.curate import curate, to_row
    from tunesmith.data.prepare import check_files, data_files, load_training_examples
    from tunesmith.models.loading import file_sha256
    from tunesmith.runs import versions, write_json

    cfg = data_config(target, overrides)
    data = dataclasses.replace(cfg.data, clean=dataclasses.replace(cfg.data.clean, enabled=False))
    check_files(data)
    examples, info = load_training_examples(data, cfg.seed)
    info.pop("group_of", None)
    kept, report = curate(examples, cfg.data.clean)
    out = Path(out or Path("data-clean") / cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "clean.jsonl", "w", encoding="utf-8") as f:
        for ex in kept:
            f.write(json.dumps(to_row(ex), ensure_ascii=False) + "\n")
    write_json(out / "clean_report.json", {"load": info, "clean": report})
    write_json(out / "manifest.json", {
        "step": "clean", "inputs": [{"path": p, "sha256": file_sha256(p)} for p in data_files(cfg.data)],
        "output": {"path": str(out / "clean.jsonl"), "sha256": file_sha256(out / "clean.jsonl"), "rows": len(kept)},
        "rows_before": report["before"]["rows"], "rows_after": report["after"]["rows"],
        "records_sha256_before": report["before"]["sha256"], "records_sha256_after": report["after"]["sha256"],
        "settings": dataclasses.asdict(cfg.data.clean), "seed": cfg.seed, "versions": versions()})
    return out


def _write_rows(out: Path, name: str, examples: list) -> dict:
    import json

    from tunesmith.data.curate import to_row
    from tunesmith.models.loading import file_sha256

    out.mkdir(parents=True, exist_ok=True)
    with open(out / name, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(to_row(ex), ensure_ascii=False) + "\n")
    return {"path": str(out / name), "rows": len(examples), "sha256": file_sha256(out / name)}


def data_augment(target: str | Path, overrides: list[str] | dict | None = None, *, methods: list[str],
                 fraction: float = 0.2, max_fraction: float = 0.3, model: str | None = None,
                 out: str | Path | None = None) -> Path:
    """Augmented copies of a fraction of the training rows (labelled synthetic), deduplicated
    against the real rows, filtered and capped at `max_fraction` of the final set; writes the final
    rows, a report and a manifest into `out`."""
    from tunesmith.data.augment import augment_examples
    from tunesmith.data.prepare import check_files, data_files
    from tunesmith.data.synth import finalize_synthetic
    from tunesmith.models.loading import file_sha256
    from tunesmith.runs import versions, write_json

    cfg = data_config(target, overrides)
    check_files(cfg.data)
    real = _training_rows(cfg)
    loaded = load(model) if model else None
    copies, aug_report = augment_examples(real, methods=methods, fraction=fraction, seed=cfg.seed, model=loaded)
    final, fin_report = finalize_synthetic(real, copies, max_fraction=max_fraction, seed=cfg.seed, dedup="exact")
    out = Path(out or Path("data-augment") / cfg.name)
    written = _write_rows(out, "augmented.jsonl", final)
    write_json(out / "augment_report.json", {"augment": aug_report, "finalize": fin_report})
    write_json(out / "manifest.json", {"step": "augment", "methods": methods, "fraction": fraction,
                                       "max_fraction": max_fraction, "model": model, "seed": cfg.seed,
                                       "inputs": [{"path": p, "sha256": file_sha256(p)} for p in data_files(cfg.data)],
                                       "output": written, "versions": versions()})
    return out


def data_synth(seed_tasks: str | Path, *, n: int, model: str = "smollm2-135m-instruct", real: str | None = None,
               max_fraction: float = 0.3, seed: int = 42, max_new_tokens: int = 256,
               out: str | Path | None = None) -> Path:
    """Self-instruct synthetic rows from seed tasks with a local model, labelled synthetic,
    deduplicated against `real` (and each other), filtered and capped; writes rows, report, manifest."""
    from tunesmith.data.readers import iter_rows
    from tunesmith.data.synth import finalize_synthetic, self_instruct, to_examples
    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.models.loading import file_sha256
    from tunesmith.runs import versions, write_json

    tasks, bad = [], []
    for line, row in iter_rows(seed_tasks):
        (bad if isinstance(row, Problem) else tasks).append(row)
    if bad:
        raise TunesmithError(bad[:50], title=f"{len(bad)} unreadable rows in {seed_tasks}:")
    gen_report: dict = {}
    rows = self_instruct(tasks, load(model), n=n, seed=seed, max_new_tokens=max_new_tokens, report=gen_report)
    real_rows = _training_rows(data_config(real)) if real else []
    final, fin_report = finalize_synthetic(real_rows, to_examples(rows), max_fraction=max_fraction, seed=seed)
    out = Path(out or "data-synth")
    written = _write_rows(out, "synthetic.jsonl", [e for e in final if e.extra.get("synthetic")])
    write_json(out / "synth_report.json", {"generate": gen_report, "finalize": fin_report})
    write_json(out / "manifest.json", {"step": "synth", "model": model, "n": n, "seed": seed,
                                       "inputs": [{"path": str(seed_tasks), "sha256": file_sha256(seed_tasks)}]
                                       + ([{"path": real, "sha256": file_sha256(real)}] if real else []),
                                       "output": written, "versions": versions()})
    return out


def _training_rows(cfg: RunConfig) -> list:
    from tunesmith.data.prepare import load_all

    return load_all(cfg.data, cfg.seed).train


def data_split(path: str | Path, ratios: dict[str, float], *, method: str = "random", key: str | None = None,
               seed: int = 42, out: str | Path | None = None) -> Path:
    """Split a data file's raw rows into files named after `ratios` (train.jsonl, ...), with a
    leakage check for grouped splits, a report and a manifest. Returns the output folder."""
    import json

    from tunesmith.data.readers import iter_rows
    from tunesmith.data.split import leakage, split_rows
    from tunesmith.errors import TunesmithError
    from tunesmith.models.loading import file_sha256
    from tunesmith.runs import versions, write_json

    rows = []
    problems = []
    for line, row in iter_rows(path):
        (problems if not isinstance(row, dict) else rows).append(row)
    if problems:
        raise TunesmithError(problems[:50], title=f"{len(problems)} unreadable rows in {path}:")
    parts = split_rows(rows, ratios, method=method, seed=seed, key=key)
    out = Path(out or Path(path).with_suffix("").name + "-split")
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, idx in parts.items():
        target = out / f"{name}.jsonl"
        with open(target, "w", encoding="utf-8") as f:
            for i in idx:
                f.write(json.dumps(rows[i], ensure_ascii=False) + "\n")
        files[name] = {"path": str(target), "rows": len(idx), "sha256": file_sha256(target)}
    leaks = leakage(rows, parts, key) if key and method == "grouped" else {}
    write_json(out / "split_report.json", {"method": method, "key": key, "ratios": ratios, "seed": seed,
                                           "splits": files, "leakage": {f"{a}/{b}": v[:50] for (a, b), v in
                                                                        leaks.items()}})
    write_json(out / "manifest.json", {"step": "split", "inputs": [{"path": str(path), "sha256": file_sha256(path),
                                                                     "rows": len(rows)}],
                                       "outputs": files, "seed": seed, "versions": versions()})
    return out


def load(run_or_model: str | Path):
    """A run directory or model name, loaded for generation (see tunesmith.inference.Loaded)."""
    from tunesmith.inference import load as _load

    return _load(str(run_or_model))


def generate(run_or_model, prompts: str | list[str] | list[list[dict]], *, system: str | None = None,
             max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None) -> list[str]:
    """Replies to prompts (strings, or conversations as lists of {role, content}), batched."""
    from tunesmith.inference import Loaded
    from tunesmith.inference import generate as _generate

    loaded = run_or_model if isinstance(run_or_model, Loaded) else load(run_or_model)
    if isinstance(prompts, str):
        prompts = [prompts]
    convs = [p if isinstance(p, list) else
             ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
             for p in prompts]
    return _generate(loaded, convs, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)


def models() -> dict:
    """Embedded models (with install state) and the dequantized-model cache."""
    from tunesmith.models.loading import list_cached
    from tunesmith.models.registry import embedded_file, embedded_models

    embedded = [{"name": k, **v, "installed": embedded_file(k) is not None} for k, v in embedded_models().items()]
    return {"embedded": embedded, "cached": list_cached()}


def export(run: str | Path, fmt: str = "hf", *, out: str | Path | None = None, quant: tuple[str, ...] | list[str] = ("q8_0",),
           force: bool = False) -> Path:
    """Export a finished run (hf | gguf | ollama) with a parity check and a model card; returns the folder."""
    from tunesmith.export.run import export as _export

    return _export(run, fmt, out, gguf_types=tuple(quant), force=force)


def serve(run_or_model: str | Path, **options) -> None:
    """Serve a run, model or .gguf over an OpenAI-compatible API until interrupted (see tunesmith.serve.app.serve)."""
    from tunesmith.serve.app import serve as _serve

    _serve(str(run_or_model), **options)
