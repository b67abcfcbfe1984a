"""LLM-as-judge pairwise comparison: which of two answers to the same question is better.

The judge is any local model (an embedded name, a checkpoint, a run) or any OpenAI-compatible
endpoint (`http(s)://host/v1`, with the key from an environment variable). Each question is judged
twice with the answers in both orders; a system wins only when both orders agree, anything else is a
tie (MT-Bench's conservative rule), which cancels the judge's position bias instead of averaging it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from tunesmith.errors import fail

_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BARE = re.compile(r"^\W*(A|B|tie|C)\b", re.IGNORECASE)


@functools.cache
def _prompt() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).parent / "judge.yaml").read_text(encoding="utf-8"))


def messages(question: str, answer_a: str, answer_b: str) -> list[dict]:
    p = _prompt()
    return [{"role": "system", "content": p["system"]},
            {"role": "user", "content": p["user"].format(question=question, answer_a=answer_a, answer_b=answer_b)}]


def parse_verdict(text: str) -> str | None:
    """'A', 'B', 'tie', or None when the judge said nothing we can read. The last [[X]] counts
    (judges sometimes quote the format before answering); a bare leading A/B/tie is accepted too."""
    found = _VERDICT.findall(text)
    if found:
        return {"A": "A", "B": "B", "C": "tie"}[found[-1]]
    m = _BARE.match(text.strip())
    if m:
        v = m.group(1).upper()
        return "tie" if v in ("TIE", "C") else v
    return None


def local_judge(run_or_model: str, max_new_tokens: int = 256, batch_size: int = 4) -> Callable:
    """A judge backed by a local model through transformers (greedy, so verdicts are repeatable)."""
    from tunesmith.inference import generate, load

    loaded = load(run_or_model)

    def ask(conversations: list[list[dict]]) -> list[str]:
        return generate(loaded, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size)

    ask.description = loaded.description
    return ask


def endpoint_judge(base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY",
                   max_tokens: int = 512, timeout_s: float = 120.0) -> Callable:
    """A judge behind an OpenAI-compatible /chat/completions endpoint (temperature 0)."""
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + "/chat/completions"
    key = os.environ.get(api_key_env) if api_key_env else None

    def one(conversation: list[dict]) -> str:
        body = json.dumps({"model": model, "messages": conversation, "temperature": 0,
                           "max_tokens": max_tokens}).encode()
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                reply = json.load(resp)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            raise fail(f"the judge endpoint {url} answered HTTP {e.code}: {detail}",
                       f"check the URL, the model name '{model}' and the key in ${api_key_env}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise fail(f"cannot reach the judge endpoint {url}: {e}",
                       "check the URL and that the server runs") from None
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise fail(f"the judge endpoint {url} did not answer in the OpenAI chat format: {str(reply)[:200]}",
                       "point at an OpenAI-compatible /v1 endpoint") from None

    def ask(conversations: list[list[dict]]) -> list[str]:
        return [one(c) for c in conversations]

    ask.description = f"{model} at {base_url}"
    return ask


def make_judge(spec: str, max_new_tokens: int = 256) -> Callable:
    """`spec` is a model (embedded name, checkpoint, run) or `URL#model` for an endpoint."""
    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        if not model:
            raise fail(f"judge endpoint '{spec}' names no model", "write it as URL#model, e.g. "
                       "http://localhost:8000/v1#gpt-4o-mini (key from $OPENAI_API_KEY)")
        return endpoint_judge(url, model, max_tokens=max(max_new_tokens, 16))
    return local_judge(spec, max_new_tokens=max_new_tokens)


def pairwise(questions: list[str], answers_base: list[str], answers_tuned: list[str], ask: Callable) -> dict:
    """Win rate of the tuned answers over the base answers, both orders judged.

    Returns the metrics (from the tuned model's side) and one record per question with both verdicts."""
    if not len(questions) == len(answers_base) == len(answers_tuned):
        raise ValueError("questions and both answer lists must have the same length")
    convs = []
    for q, a, b in zip(questions, answers_base, answers_tuned):
        convs.append(messages(q, a, b))   # order 1: base is A
        convs.append(messages(q, b, a))   # order 2: tuned is A
    replies = ask(convs)
    wins = losses = ties = inconsistent = invalid = 0
    records = []
    for i, q in enumerate(questions):
        v1, v2 = parse_verdict(replies[2 * i]), parse_verdict(replies[2 * i + 1])
        invalid += (v1 is None) + (v2 is None)
        # Both verdicts in terms of the systems: who did each order prefer?
        s1 = {"A": "base", "B": "tuned"}.get(v1 or "", "tie")
        s2 = {"A": "tuned", "B": "base"}.get(v2 or "", "tie")
        winner = s1 if s1 == s2 else "tie"
        if s1 != s2:
            inconsistent += 1
        wins += winner == "tuned"
        losses += winner == "base"
        ties += winner == "tie"
        records.append({"question": q, "verdicts": [v1, v2], "winner": winner,
                        "judge_replies": [replies[2 * i][:2000], replies[2 * i + 1][:2000]]})
    n = len(questions)
    from tunesmith.eval.human import wilson_interval

    rate = (wins + 0.5 * ties) / n if n else 0.0
    low, high = wilson_interval(rate, n) if n else (0.0, 0.0)
    metrics = {"win_rate": rate, "win_rate_low": low, "win_rate_high": high, "wins": wins, "losses": losses,
               "ties": ties, "consistency": (n - inconsistent) / n if n else 0.0, "invalid_verdicts": invalid}
    return {"metrics": metrics, "records": records}
