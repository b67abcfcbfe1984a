"""tunesmith: fine-tune open LLMs from one config, every step checked.

Imports are lazy so that `import tunesmith` (and `tunesmith --help`) stay instant.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load_config", "train", "validate", "evaluate", "report", "export", "serve", "load", "generate", "models",
           "run_sweep", "run_audit", "run_merge", "TunesmithError", "RunConfig"]

_WHERE = {"load_config": "tunesmith.config", "RunConfig": "tunesmith.config", "TunesmithError": "tunesmith.errors",
          "train": "tunesmith.api", "validate": "tunesmith.api", "load": "tunesmith.api",
          "evaluate": "tunesmith.api", "report": "tunesmith.api", "export": "tunesmith.api", "serve": "tunesmith.api",
          "generate": "tunesmith.api", "models": "tunesmith.api", "run_audit": "tunesmith.api",
          # Not `sweep` or `merge`: importing the submodules tunesmith.sweep and tunesmith.merge binds those names
          # to the modules.
          "run_sweep": "tunesmith.sweep", "run_merge": "tunesmith.merge.run"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tunesmith' has no attribute {name!r}")


def _callable_package(module_name: str, api_name: str) -> None:
    """Make the subpackage `module_name` callable as the public function `api_name`.

    tunesmith.export, .models and .serve are public functions and subpackages of the same name. Importing
    a submodule (tunesmith.export.merge) makes Python bind the package attribute to the subpackage, which
    hid the function: `tunesmith.export(run)` then raised "'module' object is not callable" in any
    process that had exported, merged or served before. Once the subpackage is callable the name works
    either way, and tunesmith.export.merge keeps working as a module path."""
    import sys
    import types

    class _Package(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return __getattr__(api_name)(*args, **kwargs)

    sys.modules[module_name].__class__ = _Package


def __dir__():
    return sorted(list(globals()) + __all__)
