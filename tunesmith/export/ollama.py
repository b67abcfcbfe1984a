"""An Ollama Modelfile next to a GGUF file, and a static check of one (no ollama binary needed).

The Modelfile says how Ollama turns a conversation into the text the model was trained on
(TEMPLATE, Go-template syntax) and where a reply ends (PARAMETER stop). Ollama does not read the
Jinja chat template inside the GGUF for a local FROM file, so a wrong or missing TEMPLATE gives a
model that answers in the wrong format or never stops. The template for each chat-template family
is data (ollama_templates.yaml); the family is detected from the model's own chat template.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from tunesmith.errors import fail

TABLE = Path(__file__).with_name("ollama_templates.yaml")
MODELFILE = "Modelfile"


@cache
def _table() -> dict:
    import yaml

    return yaml.safe_load(TABLE.read_text())


def families() -> dict[str, dict]:
    """Chat template families Ollama templates exist for: name -> {detect, stop, template, system}."""
    return _table()["families"]


def detect_family(chat_template: str | None) -> str:
    """The family of a Hugging Face chat template (Jinja source), or a TunesmithError."""
    if not chat_template:
        raise fail("the tokenizer has no chat template, so there is no conversation format to give Ollama",
                   "export a chat model (its tokenizer_config.json or chat_template.jinja has a template), or "
                   "write the Modelfile's TEMPLATE by hand")
    for name, fam in families().items():
        if all(marker in chat_template for marker in fam["detect"]):
            return name
    start = chat_template.strip()[:80].replace("\n", " ")
    raise fail(f"unknown chat template family (the template starts: {start!r})",
               f"supported families: {', '.join(families())} (tunesmith/export/ollama_templates.yaml); add the "
               "family there, or write the Modelfile's TEMPLATE by hand")


def default_system_prompt(tokenizer, family: str) -> str | None:
    """The system prompt the chat template inserts when the conversation has none (SmolLM2: 'You are a
    helpful AI assistant named SmolLM...'), found by rendering one user message."""
    pattern = families()[family].get("system")
    if not pattern:
        return None
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "tunesmith-probe"}], tokenize=False,
                                             add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that refuses this conversation: assume no default
        return None
    m = re.search(pattern, text, re.DOTALL)
    return m.group(1) if m and m.group(1).strip() else None


def write_modelfile(gguf_path: str | Path, hf_dir: str | Path, out_dir: str | Path,
                    system: str | None = None) -> Path:
    """Write out_dir/Modelfile for `gguf_path`, with the TEMPLATE, stop tokens and default system
    prompt of the tokenizer in `hf_dir` (a merged checkpoint or an adapter folder with its tokenizer).
    `system` replaces the tokenizer's default system prompt. Returns the Modelfile's path."""
    from transformers import AutoTokenizer

    gguf_path, out_dir = Path(gguf_path).resolve(), Path(out_dir)
    if not gguf_path.is_file():
        raise fail(f"GGUF file {gguf_path} does not exist", "convert the model first (tunesmith export RUN "
                   "--format gguf)")
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    family = detect_family(tokenizer.chat_template)
    fam = families()[family]
    vocab = tokenizer.get_vocab()
    stops = [s for s in fam["stop"] if s in vocab]
    if not stops:
        raise fail(f"none of the {family} end-of-turn tokens {fam['stop']} is in the tokenizer of {hf_dir}",
                   "the chat template and the vocabulary disagree; fix the tokenizer or write the Modelfile by hand")
    if system is None:
        system = default_system_prompt(tokenizer, family)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Ollama resolves FROM relative to the Modelfile's folder, so the pair can move together.
    rel = os.path.relpath(gguf_path, out_dir.resolve())
    lines = [f"# Ollama Modelfile written by tunesmith ({family} chat format). Create the model with:",
             f"#   ollama create NAME -f {MODELFILE}", "",
             f"FROM {rel if rel.startswith('..') else './' + rel}", "",
             f'TEMPLATE """{fam["template"]}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    for name, text in (("TEMPLATE", fam["template"]), ("SYSTEM", system or "")):
        if '"""' in text:
            raise fail(f'the {name} text contains """, which ends a Modelfile block early', f"remove it from {name}")
    path = out_dir / MODELFILE
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- validation


def parse_modelfile(text: str) -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, argument) for each instruction; arguments may be \"\"\"multi-line\"\"\"
    or "quoted" (quotes removed). Comments (#) and blank lines are skipped."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        raw = lines[i].strip()
        start = i
        i += 1
        if not raw or raw.startswith("#"):
            continue
        word, _, arg = raw.partition(" ")
        arg = arg.strip()
        if word.upper() == "PARAMETER":
            name, _, value = arg.partition(" ")
            arg = f"{name} {_unquote(value.strip())}"
        elif arg.startswith('"""'):
            body = arg[3:]
            while '"""' not in body and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            if '"""' not in body:
                out.append((start + 1, word, None))  # unterminated block: reported by the validator
                continue
            arg = body[: body.index('"""')]
        else:
            arg = _unquote(arg)
        out.append((start + 1, word, arg))
    return out


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def validate_modelfile(path: str | Path) -> list[str]:
    """Problems in a Modelfile ([] when it looks right to Ollama): unknown instructions or
    parameters, a FROM file that does not exist, a TEMPLATE whose {{ }} do not balance or that uses
    fields/functions Ollama's templates do not have, stop tokens missing from the GGUF's vocabulary."""
    path = Path(path)
    spec = _table()["modelfile"]
    problems: list[str] = []
    entries = parse_modelfile(path.read_text())
    gguf_file = None
    stops = []
    for line, word, arg in entries:
        where = f"{path.name}:{line}"
        if word.upper() not in spec["instructions"]:
            problems.append(f"{where}: unknown instruction {word!r} (Ollama knows {', '.join(spec['instructions'])})")
            continue
        if arg is None:
            problems.append(f'{where}: {word} opens a """ block that is never closed')
            continue
        word = word.upper()
        if word == "FROM":
            target = (path.parent / arg) if not Path(arg).is_absolute() else Path(arg)
            if arg.endswith(".gguf") or arg.startswith((".", "/")):
                if not target.is_file():
                    problems.append(f"{where}: FROM {arg}: file {target} does not exist")
                else:
                    gguf_file = target
        elif word == "PARAMETER":
            name, _, value = arg.partition(" ")
            if name not in spec["parameters"]:
                problems.append(f"{where}: unknown PARAMETER {name!r}")
            elif name == "stop":
                stops.append((where, value))
        elif word == "TEMPLATE":
            problems += [f"{where}: TEMPLATE: {p}" for p in check_template(arg)]
    if not any(w.upper() == "FROM" for _, w, _ in entries):
        problems.append(f"{path.name}: no FROM instruction (Ollama needs the model file)")
    if gguf_file is not None and stops:
        vocab = _gguf_tokens(gguf_file, [value for _, value in stops])
        if vocab is None:
            problems.append(f"{path.name}: FROM {gguf_file.name} is not a readable GGUF file with a vocabulary")
        else:
            problems += [f"{where}: stop {value!r} is not a token of {gguf_file.name}"
                         for where, value in stops if value not in vocab]
    return problems


_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')


def check_template(template: str) -> list[str]:
    """Problems in an Ollama (Go text/template) prompt template: unbalanced {{ }}, if/range/with
    without end (or the reverse), fields other than Ollama's template data, unknown functions."""
    spec = _table()["modelfile"]
    problems: list[str] = []
    if template.count("{{") != template.count("}}"):
        problems.append(f"{template.count('{{')} '{{{{' but {template.count('}}')} '}}}}'")
        return problems
    depth, fields, names = 0, set(), set()
    for m in _ACTION.finditer(template):
        body = m.group(2)
        if "{{" in body:
            problems.append(f"'{{{{' inside an action: {m.group(0)[:40]!r}")
            continue
        if body.strip().startswith("/*"):  # a comment
            continue
        code = _STRING.sub('""', body).strip()
        first = code.split(None, 1)[0] if code else ""
        if first in ("if", "range", "with", "define", "block"):
            depth += 1
        elif first == "end":
            depth -= 1
            if depth < 0:
                problems.append("{{ end }} without an open if/range/with")
                depth = 0
        fields |= set(re.findall(r"(?<![\w$])\.([A-Za-z_]\w*)", code))   # .Field, $.Field
        fields |= set(re.findall(r"\$\w*\.([A-Za-z_]\w*)", code))        # $m.Field
        code = re.sub(r"[$]?\w*(\.\w+)+|\$\w*|\(|\)|:=|=|\||,|\d+", " ", code)
        names |= {w for w in code.split() if w != "end"}
    if depth > 0:
        problems.append(f"{depth} if/range/with block(s) never closed with {{{{ end }}}}")
    problems += [f"unknown field .{f} (Ollama's template data has .{', .'.join(spec['template_fields'])})"
                 for f in sorted(fields - set(spec["template_fields"]))]
    known = set(spec["template_keywords"]) | set(spec["template_functions"]) | {"nil", "true", "false", '""'}
    problems += [f"unknown function or keyword {n!r}" for n in sorted(names - known)]
    return problems


def _gguf_tokens(path: Path, wanted: list[str]) -> set[str] | None:
    """Which of `wanted` are single tokens of the GGUF's vocabulary; None if the file is unreadable.

    llama.cpp loads just the vocabulary in well under a second; gguf's GGUFReader (the fallback
    without llama_cpp) parses every metadata array in Python, about 7 s for a 49k-token vocabulary."""
    try:
        import llama_cpp
    except ImportError:
        llama_cpp = None
    try:
        if llama_cpp is None:
            from gguf import GGUFReader

            field = GGUFReader(path).get_field("tokenizer.ggml.tokens")
            return None if field is None else set(field.contents()) & set(wanted)
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception:  # noqa: BLE001 - not a GGUF file at all: the caller reports it
        return None
    try:
        found = set()
        for s in wanted:
            ids = llm.tokenize(s.encode(), add_bos=False, special=True)
            if len(ids) == 1 and llm.detokenize(ids, special=True) == s.encode():
                found.add(s)
        return found
    finally:
        llm.close()
