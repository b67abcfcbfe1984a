"""Prompt rows for the RL recipes (GRPO, PPO): each row's prompt is a conversation up to its last
user turn, with the row's other columns beside it (they reach GRPO's reward functions)."""

from __future__ import annotations

from tunesmith.errors import fail
from tunesmith.recipes.rewards import TRL_REWARD_KWARGS


def load(cfg, tokenizer) -> tuple[list[dict], list[dict], dict]:
    """(train rows, validation rows, data report): prompts longer than data.max_length -
    rl.max_new_tokens tokens are dropped (and counted). No run directory yet, so bad data never
    leaves a half-made run behind."""
    from tunesmith.recipes import common

    loaded = common.load_rows(cfg)
    budget = cfg.data.max_length - cfg.rl.max_new_tokens
    train, dropped = _fit(prompt_rows(loaded.train), tokenizer, budget)
    val, val_dropped = _fit(prompt_rows(loaded.validation), tokenizer, budget)
    if not train:
        raise fail(f"every training prompt is longer than data.max_length - rl.max_new_tokens = {budget} tokens",
                   "raise data.max_length", field="data.max_length")
    report = {"load": loaded.info, "train_prompts": len(train), "validation_prompts": len(val),
              "dropped_overlong": {"train": dropped, "validation": val_dropped, "prompt_token_budget": budget}}
    if dropped or val_dropped:
        print(f"tunesmith: dropped {dropped + val_dropped} prompts longer than {budget} tokens "
              "(data.max_length - rl.max_new_tokens)", flush=True)
    return train, val, report


def prompt_rows(examples) -> list[dict]:
    """{"prompt": messages, **columns} per example; a chat row's prompt is its conversation up to
    the last user turn. Every row gets every column (None where missing): datasets takes its columns
    from the first row."""
    rows = []
    for e in examples:
        extra = {k: v for k, v in e.extra.items() if k != "tools"}
        prompt = e.messages
        if e.kind == "chat":
            users = [i for i, m in enumerate(e.messages) if m["role"] == "user"]
            if not users:
                raise fail("a chat row without a user turn has no prompt to answer", "add a user turn",
                           file=e.file, line=e.line)
            prompt = e.messages[: users[-1] + 1]
        clash = sorted(set(extra) & set(TRL_REWARD_KWARGS))
        if clash:
            raise fail(f"column {clash[0]!r} has the name of an argument trl passes to reward functions",
                       f"rename it (data.columns can map it), e.g. to {clash[0]}_", file=e.file, line=e.line)
        rows.append({"prompt": prompt, **extra})
    columns = sorted({k for r in rows for k in r})
    return [{k: r.get(k) for k in columns} for r in rows]


def _fit(rows: list[dict], tokenizer, budget: int) -> tuple[list[dict], int]:
    """Rows whose rendered prompt fits `budget` tokens, and how many did not."""
    lengths = [len(ids) for ids in encode_prompts(tokenizer, [r["prompt"] for r in rows])] if rows else []
    kept = [r for r, n in zip(rows, lengths) if n <= budget]
    return kept, len(rows) - len(kept)


def encode_prompts(tokenizer, prompts: list[list[dict]]) -> list[list[int]]:
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]  # the template already has BOS if any
