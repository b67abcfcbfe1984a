"""What an audit check needs from a model, and that interface over a loaded transformers model.

Checks take an AuditModel instead of a loaded model so that their known-answer tests can hand them
a scripted model (one that always refuses, never refuses, leaks a canary, ...) and so that the same
check runs on the base and the tuned model without knowing how either was loaded.
"""

from __future__ import annotations

from typing import Protocol


class AuditModel(Protocol):
    def chat(self, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
        """Greedy replies to each conversation (the last message is the user's)."""

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy raw continuations of each text (no chat template)."""

    def loglikelihoods(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Sum of log-probabilities of each continuation given its context (raw text)."""

    def chat_prefix(self, messages: list[dict]) -> str:
        """The raw text the model sees before its reply to `messages` (the chat template applied)."""


class LoadedModel:
    """An AuditModel over tunesmith.inference.Loaded (a model and its tokenizer)."""

    def __init__(self, loaded, batch_size: int = 8):
        self.loaded, self.batch_size = loaded, batch_size

    def chat(self, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
        from tunesmith.inference import generate

        return generate(self.loaded, conversations, max_new_tokens=max_new_tokens, batch_size=self.batch_size)

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        from tunesmith.inference import generate

        return generate(self.loaded, prompts, max_new_tokens=max_new_tokens, batch_size=self.batch_size, chat=False)

    def loglikelihoods(self, pairs: list[tuple[str, str]]) -> list[float]:
        from tunesmith.eval.scoring import loglikelihoods

        return loglikelihoods(self.loaded.model, self.loaded.tokenizer, pairs, batch_size=self.batch_size * 4)

    def chat_prefix(self, messages: list[dict]) -> str:
        from tunesmith.data.templates import require_template

        tok = self.loaded.tokenizer
        require_template(tok)
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
