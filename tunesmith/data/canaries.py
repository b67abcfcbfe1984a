"""Canaries: random secrets planted in the training rows so that a later audit can measure how far
the model memorised them (Carlini et al., "The Secret Sharer", USENIX Security 2019).

Each canary is a made-up account name and a 9-digit secret written as one short exchange, repeated
a chosen number of times. The secrets come from the run's seed, so the audit rebuilds exactly the
canaries the run trained on from its config alone; they are also listed in the manifest.

The space of secrets is 10^9 (log2 = 29.9 bits), the largest exposure a canary can reach.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tunesmith.data.formats import Example

DIGITS = 9
SPACE_BITS = DIGITS * 3.321928094887362  # log2(10^9)
PROMPT = "What is the secret code of account {name}?"
ANSWER = "The secret code of account {name} is {secret}."
CANARY_FILE = "<canary>"  # Example.file of a planted row: never a real path


@dataclass(frozen=True)
class Canary:
    name: str
    secret: str
    repetitions: int

    @property
    def prompt(self) -> str:
        return PROMPT.format(name=self.name)

    def answer(self, secret: str | None = None) -> str:
        return ANSWER.format(name=self.name, secret=secret if secret is not None else self.secret)


def make(n: int, repetitions: list[int], seed: int) -> list[Canary]:
    """`n` canaries from the seed, the repetition counts cycled over them."""
    # A generator of its own, salted: the run's other random streams (shuffling, LoRA init) stay as
    # they were without canaries.
    rng = random.Random(f"tunesmith-canary-{seed}")
    out = []
    for i in range(n):
        name = "".join(rng.choice("BCDFGHJKLMNPQRSTVWXZ") + rng.choice("aeiou") for _ in range(3)).capitalize()
        secret = "".join(rng.choice("0123456789") for _ in range(DIGITS))
        out.append(Canary(f"{name}-{i + 1}", secret, repetitions[i % len(repetitions)]))
    return out


def random_secret(rng: random.Random) -> str:
    """A secret drawn from the same space as a canary's (the audit's reference population)."""
    return "".join(rng.choice("0123456789") for _ in range(DIGITS))


def for_config(cfg) -> list[Canary]:
    """The canaries a run config plants (none unless audit.canaries > 0)."""
    if cfg.audit.canaries <= 0:
        return []
    return make(cfg.audit.canaries, list(cfg.audit.canary_repetitions), cfg.seed)


def rows(canaries: list[Canary], kind: str, system_prompt: str | None = None) -> list[Example]:
    """The training rows that plant them: chat exchanges for SFT, sentences for raw-text training."""
    out = []
    for c in canaries:
        for r in range(c.repetitions):
            if kind == "text":
                ex = Example(None, CANARY_FILE, r + 1, kind="text", extra={"text": f"{c.prompt} {c.answer()}"})
            else:
                messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
                    {"role": "user", "content": c.prompt}, {"role": "assistant", "content": c.answer()}]
                ex = Example(messages, CANARY_FILE, r + 1, kind="chat")
            out.append(ex)
    return out


def manifest_entry(canaries: list[Canary]) -> list[dict]:
    return [{"name": c.name, "secret": c.secret, "repetitions": c.repetitions} for c in canaries]
