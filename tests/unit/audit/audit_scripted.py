"""Scripted models for the audit's known-answer tests: plain functions behind the AuditModel
interface (tunesmith/audit/model.py), so each check's arithmetic is tested against answers worked
out by hand."""

from __future__ import annotations

import hashlib


def noise(*parts: str) -> float:
    """A fixed pseudo-random number in [0, 1) per input (a stand-in for a model's arbitrary scores)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Scripted:
    def __init__(self, reply=None, complete=None, ll=None):
        self.reply = reply or (lambda messages: "")
        self.continuation = complete or (lambda prompt: "")
        self.ll = ll or (lambda context, continuation: -noise(context, continuation))
        self.calls = 0

    def chat(self, conversations, max_new_tokens):
        self.calls += len(conversations)
        return [self.reply(c) for c in conversations]

    def complete(self, prompts, max_new_tokens):
        self.calls += len(prompts)
        return [self.continuation(p) for p in prompts]

    def loglikelihoods(self, pairs):
        return [self.ll(c, x) for c, x in pairs]

    def chat_prefix(self, messages):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"
