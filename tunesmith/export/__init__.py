"""Export: merged checkpoints, GGUF, Ollama, parity, model card."""

from tunesmith import _callable_package

_callable_package(__name__, "export")  # tunesmith.export(...) is the public function (tunesmith/__init__.py)
