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
          show_progress: bool = True) -> Path:
    """Fine-tune as the config says; returns the run directory."""
    from tunesmith.recipes import RECIPES

    cfg = _config(config, overrides)
    return RECIPES["sft"](cfg, show_progress=show_progress)


def validate(config: RunConfig | str | Path | dict, overrides: list[str] | dict | None = None) -> dict:
    """Pre-flight: config, model and data checked, data tokenized and summarised; no training.

    Raises TunesmithError (with file:line for data) on the first class of problems found.
    """
    from tunesmith.data.formats import load_examples
    from tunesmith.data.prepare import prepare
    from tunesmith.models.loading import load_tokenizer, resolve

    cfg = _config(config, overrides)
    # Rows first: a bad data file is reported without waiting for a tokenizer to load.
    load_examples(cfg.data.train + ([cfg.data.validation] if cfg.data.validation else []), cfg.data.format)
    source = resolve(cfg.model.name, cfg.model.gguf_file)
    tok = load_tokenizer(source, cfg.model.chat_template, cfg.model.trust_remote_code)
    prepared = prepare(cfg.data, tok, cfg.seed)
    return {"config": cfg.config_path, "model": {"spec": source.spec, "kind": source.kind, "path": source.path},
            "data": prepared.report()}


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
