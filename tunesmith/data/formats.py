"""Row shapes of the field -> canonical records, naming file, line and field for every bad row.

Canonical record (`Example`), by kind:
  chat            messages: the whole conversation ({role: system|user|assistant|tool, content, tool_calls?})
  preference      messages: the prompt; extra["chosen"], extra["rejected"]: the assistant turn(s)
  kto             messages: the prompt; extra["completion"]: assistant turn(s); extra["label"]: bool
  text            extra["text"]                      (continued pre-training)
  prompt          messages: the prompt; extra: the row's other columns (answers for reward functions)
  classification  extra["text"], extra["label"]

Source shapes (format=auto detects per row from the keys, after column mapping):
  alpaca          instruction, input?, output, system?                       -> chat
  chat            messages (OpenAI: system, multi-turn, tool_calls, tool)    -> chat
  sharegpt        conversations: [{from: human|gpt|system|function_call|observation, value}], tools?
                  (with chosen/rejected {from, value}: LLaMA-Factory's preference shape)
  preference      prompt?, chosen, rejected: strings, message lists (whole conversations are split at
                  their common prefix), or HH-RLHF transcripts "\n\nHuman: ... \n\nAssistant: ..."
  kto             prompt, completion, label (bool)
  classification  text, label
  text            text
  prompt          prompt (string or message list), any other columns                  -> prompt (GRPO, PPO)
                  (with a completion string: OpenAI's legacy prompt/completion shape      -> chat)
  vision          messages with image parts, or LLaVA's image(s) + conversations      -> vision
                  (data/vision.py: messages of text and image parts; extra["images"]: the references)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tunesmith.data import vision
from tunesmith.errors import Problem

ROLES = ("system", "user", "assistant", "tool")
FORMATS = ("auto", "alpaca", "chat", "sharegpt", "preference", "kto", "classification", "text", "prompt")
KIND_OF = {"alpaca": "chat", "chat": "chat", "sharegpt": "chat", "preference": "preference", "kto": "kto",
           "classification": "classification", "text": "text",
           "prompt": "prompt", "vision": "vision"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool", "tool": "tool"}
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


@dataclass
class Example:
    """One record, where it came from, and what kind it is."""

    messages: list[dict] | None
    file: str
    line: int
    kind: str = "chat"
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- detection


def detect(row: dict) -> str:
    """The source format of a row from its keys ('' when none fits)."""
    keys = set(row)
    if "chosen" in keys and "rejected" in keys:
        return "preference"
    if vision.is_vision(row):
        return "vision"
    if "messages" in keys:
        return "chat"
    if "conversations" in keys:
        return "sharegpt"
    if {"completion", "label"} <= keys:
        return "kto"
    if "instruction" in keys:
        return "alpaca"
    if {"text", "label"} <= keys:
        return "classification"
    if "text" in keys:
        return "text"
    if "prompt" in keys:
        return "prompt"
    return ""


def row_to_example(row: object, fmt: str, where: dict, columns: dict | None = None,
                   warnings: list[Problem] | None = None) -> tuple[Example | None, list[Problem]]:
    """Convert one parsed row to a canonical Example, or return the errors found; warnings (the row
    is still used) go to `warnings`."""
    if not isinstance(row, dict):
        return None, [Problem(f"row is a {type(row).__name__}, not an object", "each row must be a JSON object",
                              code="not_object", **where)]
    if columns:  # canonical name -> the source's name, e.g. {output: response, input: context}
        row = {**{k: v for k, v in row.items() if k not in columns.values()},
               **{canon: row[src] for canon, src in columns.items() if src in row}}
    if fmt == "auto":
        fmt = detect(row)
        if not fmt:
            keys = ", ".join(sorted(map(str, row))) or "none"
            return None, [Problem(f"cannot tell the format from the keys ({keys})",
                                  "set data.format, or map your keys with data.columns (e.g. {output: response})",
                                  code="unknown_format", **where)]
    elif fmt in ("chat", "sharegpt") and vision.is_vision(row):  # the same shapes, with images
        fmt = "vision"
    problems: list[Problem] = []
    result = _CONVERTERS[fmt](row, _Where(where, problems))
    if problems:
        errors = [p for p in problems if p.level == "error"]
        if warnings is not None:
            warnings.extend(p for p in problems if p.level != "error")
        if errors:
            return None, errors
    messages, extra = result
    kind = "chat" if fmt == "prompt" and messages[-1]["role"] == "assistant" else KIND_OF[fmt]
    return Example(messages, where["file"], where["line"], kind, extra), []


def row_to_messages(row: object, fmt: str, where: dict) -> tuple[list[dict] | None, list[Problem]]:
    """The conversation of one row (chat kinds), or the problems found."""
    ex, problems = row_to_example(row, fmt, where)
    return (ex.messages if ex else None), problems


class _Where:
    """Collects located problems for one row."""

    def __init__(self, where: dict, problems: list[Problem]):
        self.where, self.problems = where, problems

    def add(self, problem: str, fix: str, field: str | None = None, code: str = "invalid", level: str = "error"):
        self.problems.append(Problem(problem, fix, field=field, code=code, level=level, **self.where))

    @property
    def failed(self) -> bool:
        return any(p.level == "error" for p in self.problems)


def _string(row: dict, key: str, w: _Where, required: bool = True, field_name: str | None = None) -> str | None:
    value = row.get(key)
    name = field_name or key
    if value is None and not required:
        return None
    if not isinstance(value, str):
        if key not in row:
            w.add(f"'{key}' is missing", f"add '{key}' (or map your column to it with data.columns)", name,
                  "missing_field")
        else:
            w.add(f"'{key}' is {type(value).__name__}, not text", f"give '{key}' as a string", name, "wrong_type")
        return None
    if required and not value.strip():
        w.add(f"'{key}' is empty", "fill it in or remove the row", name, "empty_field")
        return None
    return value


# --------------------------------------------------------------------------- converters


def _alpaca(row: dict, w: _Where):
    instruction = _string(row, "instruction", w)
    context = _string(row, "input", w, required=False)
    output = _string(row, "output", w)
    system = _string(row, "system", w, required=False)
    if w.failed:
        return None
    system = system if system and system.strip() else None
    user = instruction if not (context and context.strip()) else f"{instruction}\n\n{context}"
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return messages, {}


def _tool_calls(calls: object, role: object, w: _Where, f: str) -> None:
    """OpenAI's shape: [{id, type: function, function: {name, arguments}}] on an assistant message;
    chat templates index into it, so a malformed call would fail there, far from its line."""
    if role != "assistant" or not isinstance(calls, list):
        w.add("tool_calls must be a list on an assistant message", "see the OpenAI tool-call format", f, "wrong_type")
        return
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(
                fn.get("arguments", ""), (str, dict)):
            w.add("a tool call is not {type: function, function: {name: str, arguments: str}}",
                  "see the OpenAI tool-call format", f"{f}[{j}]", "wrong_type")


def _content(content: object, calls: object, w: _Where, f: str) -> str | None:
    """A message's text: a string, or OpenAI's list of text parts (joined); None after an error."""
    if content is None and calls:
        return ""  # an assistant turn that only calls tools
    if isinstance(content, list) and content:  # [{"type": "text", "text": "..."}], as OpenAI's API accepts
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(content) and all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
        w.add("content parts other than {type: text, text: ...} (images, audio) are not supported",
              "give text parts only, or the content as a string", f"{f}.content", "wrong_type")
        return None
    if not isinstance(content, str):
        w.add(f"content is {'missing' if content is None else type(content).__name__}",
              "give content as a string", f"{f}.content", "missing_field" if content is None else "wrong_type")
        return None
    return content


def _messages(msgs: object, w: _Where, name: str, need_assistant: bool = True) -> list[dict] | None:
    """Validate an OpenAI-style message list (tool calls allowed)."""
    if not isinstance(msgs, list) or not msgs:
        w.add(f"'{name}' must be a non-empty list of {{role, content}}", "see the OpenAI chat format", name,
              "missing_field" if msgs is None else "wrong_type")
        return None
    out, before = [], len(w.problems)
    for i, m in enumerate(msgs):  # the hot loop of validation: no work on the good path that it can skip
        if type(m) is not dict:
            w.add("is not an object", 'write {"role": ..., "content": ...}', f"{name}[{i}]", "wrong_type")
            continue
        role, calls, content = m.get("role"), m.get("tool_calls"), m.get("content")
        if role not in ROLES:
            w.add(f"role {role!r} is not one of {', '.join(ROLES)}", "fix the role", f"{name}[{i}].role", "bad_role")
        elif role == "system" and i != 0:
            w.add("a system message must come first", "move it to the start", f"{name}[{i}].role", "bad_role")
        if calls is not None:
            _tool_calls(calls, role, w, f"{name}[{i}].tool_calls")
        if type(content) is not str:
            content = _content(content, calls, w, f"{name}[{i}]")
            if content is None:
                continue
        if not calls and not content.strip():
            f = f"{name}[{i}]"
            # An empty reply teaches the model to say nothing; an empty question is a broken export.
            if role in ("user", "assistant"):
                w.add(f"{role} content is empty", "fill it in or drop the turn", f"{f}.content", "empty_field")
            elif role == "system":
                w.add("system content is empty", "fill it in or drop the system message", f"{f}.content",
                      "empty_field", level="warning")
        msg = {"role": role, "content": content}
        if len(m) > 2:
            for k in ("tool_calls", "tool_call_id", "name"):
                if k in m:
                    msg[k] = m[k]
        out.append(msg)
    failed = len(w.problems) > before and any(p.level == "error" for p in w.problems[before:])
    if not failed and need_assistant and not any(m["role"] == "assistant" for m in out):
        w.add("no assistant message, so nothing to learn", "add the reply to learn", name, "no_assistant")
        failed = True
    return None if failed else out


def _check_order(messages: list[dict], w: _Where, name: str) -> None:
    """A conversation starts with the user (after any system prompt): one that opens with the
    assistant answers nothing, and most chat templates reject or mangle it. Two user (or two
    assistant) turns in a row are legal but usually a merge or export slip: a warning."""
    turns = [(i, m["role"]) for i, m in enumerate(messages) if m["role"] != "system"]
    if turns and turns[0][1] == "assistant":
        w.add("the conversation starts with the assistant's message; the first message after the system prompt "
              "must be the user's", "add the user turn it answers, or drop the row", f"{name}[{turns[0][0]}].role",
              "bad_order")
        return
    for (_, a), (j, b) in zip(turns, turns[1:]):
        if a == b and a in ("user", "assistant"):
            w.add(f"two {a} messages in a row", "merge them, or put the missing turn between them",
                  f"{name}[{j}].role", "repeated_role", level="warning")


def _tools(value: object) -> list | None:
    """A row's tool schemas as a list (ShareGPT exports often store them as a JSON string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) and value else None


def _chat(row: dict, w: _Where):
    messages = _messages(row.get("messages"), w, "messages")
    if messages is None:
        return None
    _check_order(messages, w, "messages")
    tools = _tools(row.get("tools"))
    return None if w.failed else (messages, {"tools": tools} if tools else {})


def _sharegpt_turns(turns: object, w: _Where, name: str) -> list[dict] | None:
    if not isinstance(turns, list) or not turns:
        w.add(f"'{name}' must be a non-empty list of {{from, value}}", "see the ShareGPT format", name,
              "missing_field" if turns is None else "wrong_type")
        return None
    msgs = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or not isinstance(t.get("from"), str) or t["from"] not in SHAREGPT_ROLES or \
                not isinstance(t.get("value"), str):
            got = t.get("from") if isinstance(t, dict) else type(t).__name__
            w.add(f"turn is not {{from, value}} with a known role (got {got!r})",
                  f"use from: one of {', '.join(SHAREGPT_ROLES)}, and a string value", f"{name}[{i}]", "bad_role")
            continue
        msgs.append({"role": SHAREGPT_ROLES[t["from"]], "content": t["value"]})
    return msgs


def _sharegpt(row: dict, w: _Where):
    msgs = _sharegpt_turns(row.get("conversations"), w, "conversations")
    if msgs is None or w.failed:
        return None
    messages = _messages(msgs, w, "conversations")
    if messages is None:
        return None
    _check_order(messages, w, "conversations")
    tools = _tools(row.get("tools"))
    extra = {"tools": tools} if tools else {}
    return None if w.failed else (messages, extra)


def _hh_transcript(text: str) -> list[dict] | None:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> messages (None when the text has no such turns)."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    return [{"role": "user" if who == "Human" else "assistant", "content": said.strip()}
            for who, said in zip(parts[1::2], parts[2::2])]


def _side(value: object, w: _Where, name: str) -> list[dict] | None:
    """One side of a preference pair (or a prompt) as messages."""
    if isinstance(value, str):
        hh = _hh_transcript(value)
        return hh if hh is not None else [{"role": "assistant", "content": value}]
    if isinstance(value, dict) and "from" in value:  # LLaMA-Factory: chosen: {from: gpt, value: ...}
        turns = _sharegpt_turns([value], w, name)
        return turns or None
    if isinstance(value, list) and value and isinstance(value[0], dict) and "from" in value[0]:
        return _sharegpt_turns(value, w, name)
    return _messages(value, w, name, need_assistant=False)


def _split_common_prefix(a: list[dict], b: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return a[:n], a[n:], b[n:]


def _preference(row: dict, w: _Where):
    prompt_raw = row.get("prompt", row.get("conversations"))
    chosen = _side(row.get("chosen"), w, "chosen")
    rejected = _side(row.get("rejected"), w, "rejected")
    prompt = None
    if isinstance(prompt_raw, str) and not prompt_raw.strip():
        w.add("'prompt' is empty", "give the prompt the two replies answer", "prompt", "empty_field")
    elif prompt_raw is not None:
        prompt = ([{"role": "user", "content": prompt_raw}] if isinstance(prompt_raw, str)
                  else _side(prompt_raw, w, "prompt"))
    if w.failed or chosen is None or rejected is None:
        return None
    if prompt is None:  # whole conversations (HH-RLHF, torchtune): the shared start is the prompt
        prompt, chosen, rejected = _split_common_prefix(chosen, rejected)
        if not prompt:
            w.add("chosen and rejected share no prompt", "give a 'prompt' field", "prompt", "missing_field")
            return None
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        if not side or side[-1]["role"] != "assistant" or not side[-1]["content"].strip():
            w.add(f"'{name}' has no non-empty assistant reply", "end it with the assistant's answer", name,
                  "empty_field")
    if chosen == rejected:
        w.add("chosen and rejected are identical", "drop the row: it teaches no preference", "rejected",
              "identical_pair")
    if not w.failed:
        _check_order(prompt + chosen, w, "prompt")
    return None if w.failed else (prompt, {"chosen": chosen, "rejected": rejected})


def _kto(row: dict, w: _Where):
    prompt_raw, completion_raw, label = row.get("prompt"), row.get("completion"), row.get("label")
    prompt = ([{"role": "user", "content": prompt_raw}] if isinstance(prompt_raw, str) and prompt_raw.strip()
              else _side(prompt_raw, w, "prompt") if isinstance(prompt_raw, list) else None)
    if prompt is None and not w.failed:
        w.add("'prompt' is missing or empty", "give the prompt as text or messages", "prompt", "missing_field")
    completion = _side(completion_raw, w, "completion") if completion_raw else None
    if completion is None and not w.failed:
        w.add("'completion' is missing or empty", "give the completion as text", "completion", "missing_field")
    elif completion is not None and not any(m["role"] == "assistant" and m["content"].strip() for m in completion):
        w.add("'completion' has no non-empty assistant reply", "give the completion as text", "completion",
              "empty_field")
    if not isinstance(label, bool):
        w.add(f"'label' is {label!r}, not true/false", "use a JSON boolean: true (desirable) or false", "label",
              "wrong_type")
    if not w.failed:
        _check_order(prompt + completion, w, "prompt")
    return None if w.failed else (prompt, {"completion": completion, "label": label})


def _classification(row: dict, w: _Where):
    text = _string(row, "text", w)
    label = row.get("label")
    if isinstance(label, str):  # "positive " and "positive" are one class (CSV exports pad cells)
        label = label.strip()
    if label is None or isinstance(label, bool) or not isinstance(label, (str, int)) or label == "":
        w.add(f"'label' is {row.get('label')!r}", "give the label as a class name or an integer id", "label",
              "missing_field" if label is None else "empty_field" if label == "" else "wrong_type")
    return None if w.failed else (None, {"text": text, "label": label})


def _text_row(row: dict, w: _Where):
    text = _string(row, "text", w)
    return None if w.failed else (None, {"text": text})


def _prompt_row(row: dict, w: _Where):
    value = row.get("prompt")
    if isinstance(value, str):
        messages = [{"role": "user", "content": value}] if value.strip() else None
        if messages is None:
            w.add("'prompt' is empty", "give the prompt text", "prompt", "empty_field")
    else:
        messages = _messages(value, w, "prompt", need_assistant=False)
        if messages is not None:
            _check_order(messages, w, "prompt")
        if messages is not None and messages[-1]["role"] == "assistant":
            w.add("the prompt ends with an assistant turn", "end the prompt with the user turn to be answered",
                  "prompt", "wrong_type")
    completion = row.get("completion")  # OpenAI's legacy prompt/completion fine-tuning shape -> chat
    if messages is not None and isinstance(completion, str) and completion.strip():
        messages = [*messages, {"role": "assistant", "content": completion}]
    return None if w.failed else (messages, {k: v for k, v in row.items() if k not in ("prompt", "completion")})


_CONVERTERS = {"alpaca": _alpaca, "chat": _chat, "sharegpt": _sharegpt, "preference": _preference, "kto": _kto,
               "classification": _classification, "text": _text_row, "prompt": _prompt_row,
               "vision": vision.convert}


def task_examples(examples: list[Example], template: str | None) -> list[Example]:
    """Generative task tuning: classification rows (text, label) become a user prompt from
    `template` ({text} replaced; None: the text alone) answered by the label, so a causal LM
    learns text -> label with the usual assistant-only loss. Other rows pass unchanged."""
    out = []
    for ex in examples:
        if ex.kind == "classification":
            prompt = (template or "{text}").replace("{text}", ex.extra["text"])
            turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(ex.extra["label"])}]
            ex = Example(turns, ex.file, ex.line, "chat", {"label": ex.extra["label"]})
        out.append(ex)
    return out
