"""Serving: OpenAI-compatible HTTP API, backends, chat page."""

from tunesmith import _callable_package

_callable_package(__name__, "serve")  # tunesmith.serve(...) is the public function (tunesmith/__init__.py)
