"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import REGRESSION_THRESHOLD, RunConfig, load_config


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
    from tunesmith import autotune
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
    if cfg.audit.suite:
        from tunesmith.audit.run import load_suite as load_audit_suite

        load_audit_suite(cfg.audit.suite)
    curve = []
    if autotune.pending(cfg) or cfg.train.time_budget is not None:  # auto values from the data, then the budget
        from tunesmith import lr_range
        from tunesmith.estimate import fit_budget

        cfg, curve = lr_range.run(autotune.resolve(autotune.resumed(cfg)))
        cfg = fit_budget(cfg)
    from tunesmith import energy

    with energy.measure("train", **energy.settings(cfg.energy)) as used:  # kWh and CO2eq of the training itself
        if cfg.federated.enabled:  # Flower's simulation engine runs the clients (tunesmith/federated/)
            from tunesmith.federated.runner import train as train_federated

            run_dir = train_federated(cfg, show_progress=show_progress, callbacks=callbacks)
        elif cfg.train.launcher == "ray":  # Ray Train's workers run the recipe (tunesmith/launch_ray.py)
            from tunesmith import launch_ray

            if callbacks:
                from tunesmith.errors import fail

                raise fail("callbacks (a sweep's pruning hook) cannot reach Ray's worker processes",
                           "use train.launcher: local for sweeps")
            run_dir = launch_ray.train(cfg, show_progress=show_progress)
        else:
            run_dir = recipe(cfg.recipe)(cfg, show_progress=show_progress, callbacks=callbacks)
    energy.record(run_dir, "train", used)
    if curve:
        from tunesmith import lr_range

        lr_range.keep(run_dir, curve, cfg.train.learning_rate)
    from tunesmith.runs import is_main_process

    if cfg.eval.suite and is_main_process():
        evaluate(run_dir, cfg.eval.suite, limit=cfg.eval.limit, threshold=cfg.eval.threshold,
                 samples=cfg.eval.samples, judge=cfg.eval.judge, dtype=cfg.eval.dtype, show_progress=show_progress,
                 energy=energy.settings(cfg.energy))
    if cfg.audit.suite and is_main_process():
        run_audit(run_dir, cfg.audit.suite, limit=cfg.audit.limit, judge=cfg.audit.judge,
                  threshold=cfg.audit.threshold, show_progress=show_progress, energy=energy.settings(cfg.energy))
    return run_dir


def evaluate(run_or_model: str | Path, suite: str | Path, *, out: str | Path | None = None,
             limit: int | None = None, threshold: float = REGRESSION_THRESHOLD, compare_base: bool = True,
             judge: str | None = None, samples: int = 3, dtype: str = "float32",
             show_progress: bool = True, energy: dict | None = None) -> Path:
    """Run an evaluation suite; for a run directory on its base and tuned model side by side.
    Returns the folder with report.html, report.md and eval/results.json. `energy`: {enabled,
    country, region} for the energy measurement (None: a run's own energy section, else on, USA)."""
    from tunesmith.eval.run import evaluate as _evaluate

    return _evaluate(run_or_model, suite, out=out, limit=limit, threshold=threshold,
                     compare_base=compare_base, judge=judge, samples=samples, dtype=dtype,
                     show_progress=show_progress, energy=energy)


def run_audit(run_or_model: str | Path, suite: str | Path | None = "default", *, out: str | Path | None = None,
          limit: int | None = None, judge: str | None = None, threshold: float = REGRESSION_THRESHOLD,
              checks: list[str] | None = None, show_progress: bool = True, energy: dict | None = None
              ) -> Path:
    """Safety audit (refusal, toxicity, bias, memorization) of a run's base and tuned model, or of one
    model. Returns the folder with report.html (its Safety section) and audit/results.json.
    `energy`: as for evaluate."""
    from tunesmith.audit.run import audit as _audit

    return _audit(run_or_model, suite, out=out, limit=limit, judge=judge, threshold=threshold, checks=checks,
                  show_progress=show_progress, energy=energy)


def report(runs: list[str | Path], *, out: str | Path | None = None,
           threshold: float = REGRESSION_THRESHOLD) -> tuple[Path, Path]:
    """Re-render one evaluated run's report, or compare several runs side by side (written to `out`)."""
    from tunesmith.eval.run import compare_runs, write_report

    if len(runs) == 1 and out is None:
        return write_report(Path(runs[0]), threshold=threshold)
    return compare_runs(list(runs), out or Path("reports") / "-vs-".join(Path(r).name for r in runs),
                        threshold=threshold)


def validate(config: RunConfig | str | Path | dict, overrides: list[str] | dict | None = None,
             kinds: tuple[str, ...] | None = None, estimate: bool = False) -> dict:
    """Pre-flight: config, model and data checked, data tokenized and summarised; no training.

    Raises TunesmithError (with file:line for data) listing every bad row, unless data.on_error=skip.
    `kinds`: the record kinds the run's recipe trains on (None: any kind, for data-only checks).
    `estimate`: also predict the run's wall time and peak memory from a few timed training steps in
    a child process (see tunesmith.estimate), under report["estimate"]; nothing is left behind.
    """
    from tunesmith.data.inspect import split_report, vision_split_report
    from tunesmith.data.prepare import check_kinds, load_all
    from tunesmith.models.loading import load_tokenizer, materialize, resolve

    cfg = _config(config, overrides)
    # Rows first: a bad data file is reported without waiting for a tokenizer to load.
    loaded = load_all(cfg.data, cfg.seed)
    if kinds:  # a run's checks: the recipe's kinds, and its own code-level refusals
        from tunesmith.recipes import preflight

        check_kinds(loaded.train + loaded.validation, kinds)
        preflight(cfg)
    if cfg.eval.suite:
        from tunesmith.eval.tasks import load_suite

        load_suite(cfg.eval.suite, cfg.eval.limit)
    if cfg.audit.suite:
        from tunesmith.audit.run import load_suite as load_audit_suite

        load_audit_suite(cfg.audit.suite)
    source = resolve(cfg.model.name, cfg.model.gguf_file)
    from tunesmith.models.loading import check_max_length

    positions = check_max_length(source, cfg.data.max_length, (cfg.model.rope_scaling, cfg.model.rope_factor),
                                 cfg.model.trust_remote_code)
    tok = load_tokenizer(source, cfg.model.chat_template, cfg.model.trust_remote_code)
    from tunesmith import licences

    report = {"config": cfg.config_path, "model": {"spec": source.spec, "kind": source.kind, "path": source.path},
              "load": loaded.info, "data": {}, "max_length": cfg.data.max_length, "positions": positions,
              "licences": licences.check(cfg.data, source)}  # the cascade the run's manifest will carry
    if cfg.model.quantization != "none":  # a 4/8-bit path that is wrong or missing here is said now, not mid-run
        from tunesmith.models.quant import preflight as quant_preflight

        report["quantization"] = quant_preflight(cfg.model.quantization)
    from tunesmith.data import vision

    if cfg.recipe == "vlm":  # the model's processor renders and tokenizes, with every image opened
        tok = vision.load_processor(str(materialize(source)), cfg.model.trust_remote_code)
        tok.chat_template = cfg.model.chat_template or tok.chat_template
    elif any(e.kind == "vision" for e in loaded.train + loaded.validation):  # images named at file:line
        vision.check_images(loaded.train + loaded.validation, cfg.vision, cfg.config_path).raise_if_errors()
    for name, examples in (("train", loaded.train), ("validation", loaded.validation)):
        if examples:
            report["data"][name] = (vision_split_report(examples, tok, cfg) if cfg.recipe == "vlm"
                                    else split_report(examples, tok, cfg.data, kinds))
    if kinds:  # auto values as the run will resolve them (tunesmith/autotune.py), from the same rows
        from tunesmith import autotune

        shape = autotune.shape_from_report(report["data"].get("train", {}), bool(loaded.validation), cfg)
        cfg = autotune.resolve(cfg, shape)
        if estimate:
            from tunesmith.estimate import fit_budget

            cfg = fit_budget(cfg)
        report["auto"] = {key: {"value": autotune.value(cfg, key), "rule": why} for key, why in cfg.auto.items()}
        if cfg.train.lr_range_test and "train.learning_rate" in report["auto"]:
            report["auto"]["train.learning_rate"]["rule"] += "; train.lr_range_test: a range test picks it at training"
        report["train"] = {k: getattr(cfg.train, k) for k in ("epochs", "max_steps", "batch_size", "learning_rate",
                                                              "eval_steps", "early_stopping_patience")}
        if cfg.federated.enabled:  # rounds x local steps replace epochs; the server evaluates every round
            from tunesmith.federated.partition import clients_per_round, num_clients

            fed = cfg.federated
            for key in ("train.epochs", "train.eval_steps", "train.early_stopping_patience"):
                report["auto"].pop(key, None)
            n = num_clients(fed, cfg.data.train)
            report["federated"] = {"clients": n, "rounds": fed.rounds, "local_steps": fed.local_steps,
                                   "client_steps": clients_per_round(fed, n) * fed.rounds * fed.local_steps,
                                   "strategy": fed.strategy, "secure_aggregation": fed.secure_aggregation}
    if estimate:  # after every check above: a config or data problem is reported before any training
        from tunesmith.estimate import estimate as _estimate

        report["estimate"] = _estimate(cfg)
    return report


def data_config(target: str | Path, overrides: list[str] | dict | None = None) -> RunConfig:
    """A run config for a YAML file, or a minimal one around a bare data file."""
    from tunesmith.data.readers import SUFFIXES

    path = Path(target)
    if path.suffix.lower() in SUFFIXES:
        return load_config({"name": "data", "data": {"train": [str(path.resolve())]}}, overrides)
    return load_config(path, overrides)


def preview(target: str | Path, overrides: list[str] | dict | None = None, n: int = 3) -> tuple[list, list, object]:
    """The first `n` training rows tokenized: (examples, tokenized rows, tokenizer)."""
    from tunesmith.data.inspect import preview_rows
    from tunesmith.data.prepare import load_all
    from tunesmith.models.loading import load_tokenizer, resolve

    cfg = data_config(target, overrides)
    loaded = load_all(cfg.data, cfg.seed)
    tok = load_tokenizer(resolve(cfg.model.name, cfg.model.gguf_file), cfg.model.chat_template)
    chats, rows = preview_rows(loaded.train, tok, n, cfg.data.train_on)
    return chats, rows, tok


def data_clean(target: str | Path, overrides: list[str] | dict | None = None, out: str | Path | None = None) -> Path:
    """Run the data.clean steps on a data file or a config's training data; writes the cleaned rows,
    a report and a manifest (hashes before and after) into `out`. Returns `out`."""
    from tunesmith.data.commands import write_clean

    cfg = data_config(target, overrides)
    return write_clean(cfg.data, cfg.seed, Path(out or Path("data-clean") / cfg.name))


def data_augment(target: str | Path, overrides: list[str] | dict | None = None, *, methods: list[str],
                 fraction: float = 0.2, max_fraction: float = 0.3, model: str | None = None,
                 out: str | Path | None = None) -> Path:
    """Augmented copies of a fraction of the training rows (labelled synthetic), deduplicated
    against the real rows, filtered and capped at `max_fraction` of the final set; writes the final
    rows, a report and a manifest into `out`."""
    from tunesmith.data.commands import write_augmented
    from tunesmith.data.prepare import load_all

    cfg = data_config(target, overrides)
    real = load_all(cfg.data, cfg.seed).train  # bad data is reported before a model loads
    return write_augmented(real, cfg.data, cfg.seed, Path(out or Path("data-augment") / cfg.name), methods=methods,
                           fraction=fraction, max_fraction=max_fraction, model=model,
                           generate=_generator(model) if model else None)


def data_synth(seed_tasks: str | Path, *, n: int, model: str = "smollm2-135m-instruct", real: str | None = None,
               max_fraction: float = 0.3, seed: int = 42, max_new_tokens: int = 256,
               out: str | Path | None = None) -> Path:
    """Self-instruct synthetic rows from seed tasks with a local model, labelled synthetic,
    deduplicated against `real` (and each other), filtered and capped; writes rows, report, manifest."""
    from tunesmith.data.commands import read_seed_tasks, write_synthetic
    from tunesmith.data.prepare import load_all

    tasks = read_seed_tasks(seed_tasks)  # bad seed tasks, and a bad `real`, are reported before a model loads
    real_rows = []
    if real:
        real_cfg = data_config(real)
        real_rows = load_all(real_cfg.data, real_cfg.seed).train
    return write_synthetic(tasks, _generator(model), Path(out or "data-synth"), n=n, seed=seed,
                           max_new_tokens=max_new_tokens, real_rows=real_rows, max_fraction=max_fraction,
                           model=model, inputs=[str(seed_tasks)] + ([real] if real else []))


def data_split(path: str | Path, ratios: dict[str, float], *, method: str = "random", key: str | None = None,
               seed: int = 42, out: str | Path | None = None) -> Path:
    """Split a data file's raw rows into files named after `ratios` (train.jsonl, ...), with a
    leakage check for grouped splits, a report and a manifest. Returns the output folder."""
    from tunesmith.data.commands import write_split

    return write_split(path, ratios, Path(out or Path(path).with_suffix("").name + "-split"), method=method, key=key,
                       seed=seed)


def _generator(model: str):
    """`model` loaded, as the generate function that data augmentation and synthesis take."""
    from tunesmith.inference import Generator

    return Generator(load(model))


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


def export(run: str | Path, fmt: str = "hf", *, out: str | Path | None = None,
           quant: tuple[str, ...] | list[str] = ("q8_0",), force: bool = False, bits: int = 4,
           group_size: int = 128) -> Path:
    """Export a finished run (hf | gguf | ollama | gptq | awq) with a parity check and a model card; returns the
    folder. gptq and awq quantize on a CUDA GPU (bits, group_size) and refuse elsewhere."""
    from tunesmith.export.run import export as _export

    return _export(run, fmt, out, quant=tuple(quant), force=force, bits=bits, group_size=group_size)


def serve(run_or_model: str | Path, **options) -> None:
    """Serve a run, model or .gguf over an OpenAI-compatible API until interrupted (see tunesmith.serve.app.serve)."""
    from tunesmith.serve.app import serve as _serve

    _serve(str(run_or_model), **options)
