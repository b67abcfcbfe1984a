"""Model resolution, loading, caching and adapters."""

from tunesmith import _callable_package

_callable_package(__name__, "models")  # tunesmith.models(...) is the public function (tunesmith/__init__.py)
