"""Reading a config: YAML with the line of every key, dotted overrides, and building the typed tree
with every type error collected (tunesmith/config.py holds the tree itself and `load_config`)."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

from tunesmith.errors import Collector, Problem, TunesmithError, fail

# --------------------------------------------------------------------------- YAML with lines


def read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """Parse YAML keeping the line of every dotted key (for error messages)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("config file not found", "check the path", file=str(path)) from None
    except IsADirectoryError:
        raise fail("is a folder, not a config file", "pass the YAML file inside it", file=str(path)) from None
    except UnicodeDecodeError as e:
        raise fail(f"not a UTF-8 text file (byte {e.start})", "pass a YAML config (or a data file with a known "
                   "suffix: .jsonl .json .txt .csv .tsv .parquet)", file=str(path)) from None
    except OSError as e:
        raise fail(f"cannot be read: {e.strerror}", "check the path and its permissions", file=str(path)) from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise fail(f"not valid YAML: {getattr(e, 'problem', e)}", "fix the YAML syntax", file=str(path),
                   line=mark.line + 1 if mark else None) from None
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise fail("the config must be a mapping of sections (model:, data:, train:, ...)", file=str(path), line=1)
    lines: dict[str, int] = {}

    duplicates = []

    def walk(n, prefix):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = f"{prefix}{k.value}"
                if key in lines:  # YAML keeps the last silently; a config typo should not
                    duplicates.append(Problem(f"key given twice (first on line {lines[key]})", "keep one",
                                              file=str(path), line=k.start_mark.line + 1, field=key))
                lines[key] = k.start_mark.line + 1
                walk(v, key + ".")
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[f"{prefix.rstrip('.')}[{i}]"] = v.start_mark.line + 1
                walk(v, f"{prefix.rstrip('.')}[{i}].")

    walk(node, "")
    if duplicates:
        raise TunesmithError(duplicates) if len(duplicates) == 1 else TunesmithError(
            duplicates, title=f"{path}: invalid config:")
    return yaml.safe_load(text) or {}, lines


def parse_override(item: str) -> tuple[str, Any]:
    import yaml

    if "=" not in item:
        raise fail(f"override '{item}' is not key=value",
                   "write it as section.key=value, e.g. train.learning_rate=1e-4")
    key, _, raw = item.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


# --------------------------------------------------------------------------- typed building


def type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def fix_for(tp) -> str:
    """How to write a valid value of a field type, for error messages."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return f"use one of {type_name(tp)}"
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return fix_for(inner[0]) + (", or null" if len(inner) < len(typing.get_args(tp)) else "")
    if origin is list:
        return "use a list, e.g. [a.jsonl, b.jsonl], or a single value"
    return {bool: "use true or false", int: "use a whole number, e.g. 8", float: "use a number, e.g. 2.0e-4",
            str: "use text"}.get(tp, f"use a {type_name(tp)}")


def coerce(value: Any, tp) -> tuple[bool, Any]:
    """Check `value` against a field type; returns (ok, value) with gentle, lossless coercion."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = coerce(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        return ok, dict(value) if ok else value
    if origin is list:
        (inner,) = typing.get_args(tp)
        items = value if isinstance(value, list) else [value]  # a single path is a list of one
        out = []
        for it in items:
            ok, v = coerce(it, inner)
            if not ok:
                return False, value
            out.append(v)
        return True, out
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                value = float(value)
            except ValueError:
                return False, value
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False, value
        return math.isfinite(value), float(value)  # nan and inf pass every range check: refuse them
    if tp is str:
        return isinstance(value, str), value
    return True, value


def build(cls, raw: Any, prefix: str, errors: Collector, lines: dict[str, int], file: str | None):
    where = lambda key: {"file": file, "line": lines.get(key), "field": key}  # noqa: E731
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.add(f"expected a mapping of keys, got {raw!r}", f"write '{prefix.rstrip('.')}:' followed by "
                   "indented keys", **where(prefix.rstrip(".")))
        return cls() if prefix else None  # the top level must be a mapping
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "config_path"}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            fix = f"did you mean '{prefix}{close[0]}'?" if close else f"valid keys here: {', '.join(fields)}"
            errors.add("unknown key", fix, **where(dotted))
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):  # a nested section
            kwargs[key] = build(tp, value, f"{dotted}.", errors, lines, file)
            continue
        item_tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        if item_tp is not None and dataclasses.is_dataclass(item_tp):  # a list of sections
            items = value if isinstance(value, list) else [value]
            kwargs[key] = [build(item_tp, v, f"{dotted}[{i}].", errors, lines, file) for i, v in enumerate(items)]
            continue
        ok, v = coerce(value, tp)
        if not ok:
            errors.add(f"{value!r} is not a valid {type_name(tp)}", fix_for(tp), **where(dotted))
            continue
        kwargs[key] = v
    return cls(**kwargs)
