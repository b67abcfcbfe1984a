"""Serving: OpenAI-compatible HTTP API, backends, chat page."""
