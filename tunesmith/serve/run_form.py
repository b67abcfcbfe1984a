"""The run settings a browser may set (the studio's form, a job's `tunesmith_overrides`): which keys,
their description from the typed config, and the loader's verdict on a set of values."""

from __future__ import annotations

from tunesmith.serve.schema import APIError

EDITABLE_PREFIXES = ("train.", "lora.", "preference.", "data.max_length", "data.validation_fraction",
                     "data.train_on", "data.packing", "data.overlong", "data.system_prompt", "seed")
NOT_EDITABLE = {"train.launcher", "train.workers", "train.ray_address", "train.tracking_uri", "train.report_to",
                "train.threads", "train.compile", "train.kernels", "train.lr_range_test"}


def schema() -> list[dict]:
    """The editable fields of the run config: key, type, default, help, choices."""
    from tunesmith.config import describe

    rows = []
    for key, type_name, default, help_text in describe():
        if not key.startswith(EDITABLE_PREFIXES) or key in NOT_EDITABLE or "[]" in key:
            continue
        parts = [c.strip() for c in type_name.split("|")]
        # a pick-list only when every value is a fixed word; "float | 'auto'" stays a text field
        choices = [c.strip("'") for c in parts] if all(c.startswith("'") for c in parts) else None
        rows.append({"key": key, "type": type_name, "default": default, "help": help_text,
                     "choices": choices})
    return rows


def check_overrides(overrides: dict) -> dict[str, object]:
    """Only editable keys, as {dotted key: value}; anything else is a 400 naming the key."""
    if not isinstance(overrides, dict) or len(overrides) > 200:
        raise APIError(400, "tunesmith_overrides must be an object of at most 200 dotted keys",
                       param="tunesmith_overrides")
    allowed = {f["key"] for f in schema()}
    for key in overrides:
        if key not in allowed:
            raise APIError(400, f"{str(key)[:80]!r} cannot be set from the studio", param=f"tunesmith_overrides.{key}",
                           code="not_editable")
    return overrides


def validate(overrides: dict, base: str) -> dict:
    """The config the form describes, checked by the loader: every problem with its key, and the YAML."""
    from tunesmith.config import dump_yaml, load_config
    from tunesmith.errors import TunesmithError

    check_overrides(overrides)
    raw = {"name": "studio-run", "model": {"name": base}, "data": {"train": ["train.jsonl"]}}
    try:
        cfg = load_config(raw, {k: v for k, v in overrides.items() if v not in ("", None)})
    except TunesmithError as e:
        return {"ok": False, "problems": [{"field": p.field, "problem": p.problem, "fix": p.fix}
                                          for p in e.problems]}
    return {"ok": True, "problems": [], "yaml": dump_yaml(cfg)}
