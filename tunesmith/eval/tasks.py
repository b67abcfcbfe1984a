"""Evaluation suites and tasks: what to run, on which data, scored how.

A suite is a YAML file listing tasks; each task names a data file, a `type` (how it is scored) and
its prompt format, usually through a `preset` from presets.yaml (HellaSwag, MMLU, GSM8K, ...) whose
fields the task may override. Prompts are Jinja2 templates over the data row's fields.

  perplexity       raw text (.txt, or the `text_field` of .jsonl rows): eval_loss, perplexity, bits_per_byte;
                   chat/instruction rows: eval_loss and perplexity on the reply tokens
  multiple_choice  log-likelihood of each option: acc, and acc_norm (per character, as lm-eval)
  classification   options are label names: accuracy, P/R/F1 macro and micro, AUC
  generation       the model answers; `metrics` scores the answer against `reference`
  ifeval           verifiable instructions, strict and loose, prompt and instruction level
  code             completions run against the row's unit tests in a sandbox: pass@k
  judge            both models answer; a judge model picks the better one (needs two models)
  harness          tasks of lm-evaluation-harness, if installed, on the same model (eval/harness.py)
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tunesmith.errors import Collector, fail

TYPES = ("perplexity", "multiple_choice", "classification", "generation", "ifeval", "code", "judge", "harness")
GENERATIVE = ("generation", "ifeval", "code", "judge")
GENERATION_BATCH_SCALE = 4  # generation batches hold this many times the suite's batch_size


@dataclass
class TaskSpec:
    """One task of a suite. Every field may come from the preset; the task's own value wins."""

    name: str = ""
    type: str = ""
    data: str = ""
    preset: str | None = None
    limit: int | None = None            # first N rows (None: the suite's limit, then all)
    prompt: str = ""                    # Jinja2 over the row: the context or the user message
    system: str | None = None           # system message for chat prompts
    reference: str = ""                 # Jinja2: the reference answer (generation)
    choices: str | list[str] = ""       # multiple choice: a row field holding the options, or a fixed list
    labels: list[str] = field(default_factory=list)  # classification: the label names
    continuation: str = " {{ choice }}"  # Jinja2 over `choice`, `index`: the text scored for each option
    label: str = "label"                # the row field (or a Jinja2 expression) with the gold option
    metrics: list[str] = field(default_factory=list)  # generation metrics (eval/metrics.py)
    text_field: str = "text"            # perplexity: the text field of .jsonl rows
    max_length: int = 1024              # perplexity window
    stride: int | None = None           # perplexity: overlapping windows (context only)
    max_new_tokens: int = 128
    chat: bool = True                   # generation through the chat template (False: raw continuation)
    stop: list[str] = field(default_factory=list)
    temperature: float = 0.0
    samples: int = 1                    # code: completions per problem (pass@k needs k <= samples)
    ks: list[int] = field(default_factory=lambda: [1])
    timeout_s: float = 10.0             # code: per-sample limit
    harness_tasks: list[str] = field(default_factory=list)  # harness: lm-eval task names
    include_path: str | None = None     # harness: folder of local lm-eval task YAMLs (offline tasks)
    num_fewshot: int | None = None      # harness: few-shot examples (None: the task's default)


@dataclass
class Suite:
    name: str
    file: str
    tasks: list[TaskSpec]
    batch_size: int = 8


@functools.cache
def presets() -> dict[str, dict]:
    import yaml

    return yaml.safe_load((Path(__file__).parent / "presets.yaml").read_text(encoding="utf-8"))


def load_suite(path: str | Path, limit: int | None = None) -> Suite:
    """Read and check a suite file; data paths resolve against the suite's folder. Every problem in
    the file is reported at once. `limit` replaces the rows per task that the suite sets."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise fail("suite file not found", "pass the path of a suite YAML (see configs/eval/)", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise fail(f"not valid YAML: {e}", "fix the syntax", file=str(path)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list) or not raw["tasks"]:
        raise fail("a suite needs a non-empty `tasks:` list", "see configs/eval/example-suite.yaml", file=str(path))
    errors = Collector(title=f"{path}: the suite has problems:")
    unknown = set(raw) - {"name", "tasks", "limit", "batch_size"}
    if unknown:
        errors.add(f"unknown suite keys {sorted(unknown)}", "use name, tasks, limit, batch_size", file=str(path))
    tasks = [_task(t, i, path, raw.get("limit"), errors) for i, t in enumerate(raw["tasks"])]
    if limit is not None:  # the caller's limit (eval.limit, --limit) replaces every task's own
        for t in tasks:
            t.limit = limit
    names = [t.name for t in tasks]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        errors.add(f"two tasks are named '{dup}'", "give each task a unique `name`", file=str(path))
    errors.raise_if_any()
    return Suite(str(raw.get("name") or path.stem), str(path), tasks, int(raw.get("batch_size", 8)))


def _task(raw: object, i: int, path: Path, limit: int | None, errors: Collector) -> TaskSpec:
    where = {"file": str(path), "field": f"tasks[{i}]"}
    if not isinstance(raw, dict):
        errors.add(f"a task must be a mapping, got {raw!r}", "write `- preset: ...` / `type: ...` entries", **where)
        return TaskSpec(name=f"task{i}")
    merged: dict = {}
    if raw.get("preset") is not None:
        if raw["preset"] not in presets():
            errors.add(f"unknown preset '{raw['preset']}'", f"use one of {', '.join(presets())}", **where)
        else:
            merged.update(presets()[raw["preset"]])
    merged.update(raw)
    known = {f.name for f in fields(TaskSpec)}
    for key in sorted(set(merged) - known):
        errors.add(f"unknown task key '{key}'", f"valid keys: {', '.join(sorted(known))}", **where)
    spec = TaskSpec(**{k: v for k, v in merged.items() if k in known})
    spec.name = str(spec.name or spec.preset or Path(spec.data).stem or spec.type or f"task{i}")
    if spec.limit is None:
        spec.limit = limit
    if spec.type not in TYPES:
        errors.add(f"task '{spec.name}' has type {spec.type!r}", f"use one of {', '.join(TYPES)} or a preset",
                   **where)
    if spec.type == "harness":
        if not spec.harness_tasks:
            errors.add(f"task '{spec.name}' lists no `harness_tasks`", "e.g. harness_tasks: [hellaswag, arc_easy]",
                       **where)
        if spec.include_path:
            inc = Path(spec.include_path).expanduser()
            spec.include_path = str(inc if inc.is_absolute() else (path.parent / inc).resolve())
            if not Path(spec.include_path).is_dir():
                errors.add(f"task '{spec.name}': include_path {spec.include_path} is not a folder",
                           "point at the folder holding your lm-eval task YAMLs", **where)
        spec.prompt = spec.prompt or "(lm-eval)"
    elif not spec.data:
        errors.add(f"task '{spec.name}' has no `data` file", "give the path of its .jsonl (or .txt) file", **where)
    else:
        data = Path(spec.data).expanduser()
        spec.data = str(data if data.is_absolute() else (path.parent / data).resolve())
        if not Path(spec.data).is_file():
            errors.add(f"task '{spec.name}': data file {spec.data} not found",
                       "paths are relative to the suite file's folder", **where)
    if spec.type != "perplexity" and not spec.prompt:
        errors.add(f"task '{spec.name}' has no `prompt` template", "add prompt: \"{{ field }}\"", **where)
    if spec.type == "multiple_choice" and not spec.choices:
        errors.add(f"task '{spec.name}' needs `choices` (a row field or a list)", "e.g. choices: endings", **where)
    if spec.type == "classification" and len(spec.labels) < 2:
        errors.add(f"task '{spec.name}' needs at least two `labels`", "e.g. labels: [negative, positive]", **where)
    if spec.type == "generation":
        from tunesmith.eval.metrics import GENERATION_METRICS

        if not spec.reference or not spec.metrics:
            errors.add(f"task '{spec.name}' needs `reference` and `metrics`",
                       "e.g. reference: \"{{ summary }}\", metrics: [rouge, bleu]", **where)
        bad = [m for m in spec.metrics if m not in GENERATION_METRICS]
        if bad:
            errors.add(f"task '{spec.name}': unknown metrics {bad}", f"use {', '.join(GENERATION_METRICS)}",
                       **where)
    if spec.type == "code" and max(spec.ks) > spec.samples:
        errors.add(f"task '{spec.name}': pass@{max(spec.ks)} needs at least that many samples (samples: "
                   f"{spec.samples})", f"set samples >= {max(spec.ks)} and temperature > 0", **where)
    return spec


def to_dict(spec: TaskSpec) -> dict:
    return asdict(spec)


# ---- data and templates -------------------------------------------------------------------------

@functools.cache
def _jinja():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    # Sandboxed: a suite file from elsewhere must not run arbitrary Python through its templates.
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


@functools.lru_cache(maxsize=256)
def _compiled(template: str):
    return _jinja().from_string(template)


def render(template: str, row: dict, spec: TaskSpec, line: int, **extra) -> str:
    from jinja2 import TemplateError

    try:
        return _compiled(template).render({**row, **extra})  # extra (choice, index) wins over row fields
    except TemplateError as e:
        raise fail(f"task '{spec.name}': the template {template[:60]!r} failed on this row: {e}",
                   f"the row has fields {sorted(row)}; fix the template or the data",
                   file=spec.data, line=line) from None


def read_rows(spec: TaskSpec) -> list[tuple[int, dict]]:
    """(line, row) pairs, the first `limit`; unreadable rows stop the task with their line."""
    from tunesmith.data.readers import iter_rows
    from tunesmith.errors import Problem, TunesmithError

    rows, problems = [], []
    for line, row in iter_rows(spec.data):
        if isinstance(row, Problem):
            problems.append(row)
        elif not isinstance(row, dict):
            problems.append(Problem(f"expected a JSON object, got {type(row).__name__}", "one object per line",
                                    file=spec.data, line=line))
        else:
            rows.append((line, row))
        if spec.limit is not None and len(rows) >= spec.limit:
            break
    if problems:
        raise TunesmithError(problems, title=f"task '{spec.name}': {len(problems)} unreadable rows in {spec.data}:")
    if not rows:
        raise fail(f"task '{spec.name}' has no rows", "check the data file", file=spec.data)
    return rows


def _gold(spec: TaskSpec, row: dict, line: int, options: list[str]) -> int:
    value = render(spec.label, row, spec, line) if "{{" in spec.label else row.get(spec.label)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or value is None:
        raise fail(f"task '{spec.name}': row has no gold label in '{spec.label}' (got {value!r})",
                   "set `label:` to the field holding the answer index or text", file=spec.data, line=line)
    if isinstance(value, int):
        if not 0 <= value < len(options):
            raise fail(f"task '{spec.name}': gold index {value} is outside the {len(options)} options",
                       "labels are 0-based indexes into the options", file=spec.data, line=line)
        return value
    for match in (lambda o: o == value, lambda o: o.strip().lower() == str(value).strip().lower()):
        hits = [i for i, o in enumerate(options) if match(o)]
        if hits:
            return hits[0]
    raise fail(f"task '{spec.name}': gold label {value!r} is not one of the options {options}",
               "fix the row, or list it in `labels`/`choices`", file=spec.data, line=line)


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def _code_of(answer: str) -> str:
    """Chat models wrap code in a fenced block, often with prose around it: keep the block. The
    program is prompt + completion, so a block that restates the whole function simply redefines it."""
    m = _FENCE.search(answer)
    return "\n" + m.group(1) if m and m.group(1).strip() else answer


# ---- scoring per type ----------------------------------------------------------------------------

@dataclass
class TaskResult:
    metrics: dict
    records: list[dict]                       # one per row: prompt, reference, output, and scores
    lengths: list[int] = field(default_factory=list)  # generated tokens per row (generative types)
    info: dict = field(default_factory=dict)          # facts about the task's data (perplexity: tokens)


def _options(spec: TaskSpec, row: dict, line: int) -> list[str]:
    if spec.type == "classification":
        return list(spec.labels)
    options = spec.choices if isinstance(spec.choices, list) else row.get(spec.choices)
    if not isinstance(options, list) or len(options) < 2:
        raise fail(f"task '{spec.name}': the options in '{spec.choices}' are {options!r}",
                   "give a list of at least two options", file=spec.data, line=line)
    return [str(o) for o in options]


def run_choices(loaded, spec: TaskSpec, rows: list[tuple[int, dict]], batch_size: int) -> TaskResult:
    """Multiple choice and classification: the option with the highest log-likelihood wins."""
    from tunesmith.eval import scoring

    pairs, items = [], []
    for line, row in rows:
        options = _options(spec, row, line)
        context = render(spec.prompt, row, spec, line)
        conts = [render(spec.continuation, row, spec, line, choice=o, index=k) for k, o in enumerate(options)]
        items.append((context, options, conts, _gold(spec, row, line, options)))
        pairs += [(context, c) for c in conts]
    lls = scoring.loglikelihoods(loaded.model, loaded.tokenizer, pairs, batch_size=batch_size * 4)
    records, pos, correct, correct_norm, y_pred, probs = [], 0, 0, 0, [], []
    for context, options, _conts, gold in items:
        ll = lls[pos:pos + len(options)]
        pos += len(options)
        pred = max(range(len(ll)), key=ll.__getitem__)
        # acc_norm as lm-eval: log-likelihood per character of the option's text (not counting the
        # delimiter before it), so that long options are not penalised for having more tokens.
        norm = [x / max(1, len(o)) for x, o in zip(ll, options)]
        pred_norm = max(range(len(norm)), key=norm.__getitem__)
        correct += pred == gold
        correct_norm += pred_norm == gold
        y_pred.append(pred)
        top = max(ll)
        z = sum(math.exp(x - top) for x in ll)
        probs.append([math.exp(x - top) / z for x in ll])
        records.append({"prompt": context, "reference": options[gold], "output": options[pred],
                        "correct": pred == gold, "loglikelihoods": [round(x, 4) for x in ll]})
    n = len(items)
    if spec.type == "multiple_choice":
        return TaskResult({"acc": correct / n, "acc_norm": correct_norm / n}, records)
    from tunesmith.eval.metrics import classification

    y_true = [gold for *_, gold in items]
    probs_arg = [p[1] for p in probs] if len(spec.labels) == 2 else probs
    return TaskResult(classification(y_true, y_pred, probs=probs_arg, labels=list(range(len(spec.labels)))),
                      records)


def run_perplexity(loaded, spec: TaskSpec, batch_size: int) -> TaskResult:
    """Raw text (.txt, or rows with `text_field`): perplexity over windows. Instruction or chat rows
    (any training format: alpaca, messages, sharegpt, ...): held-out loss on the reply tokens."""
    from tunesmith.eval import scoring

    if Path(spec.data).suffix.lower() == ".txt":
        texts = [Path(spec.data).read_text(encoding="utf-8")]
    else:
        rows = read_rows(spec)
        if not isinstance(rows[0][1].get(spec.text_field), str):
            return _conversation_loss(loaded, spec, rows, batch_size)
        texts = []
        for line, row in rows:
            if not isinstance(row.get(spec.text_field), str):
                raise fail(f"task '{spec.name}': row has no text field '{spec.text_field}'",
                           f"set `text_field:` to one of {sorted(row)}", file=spec.data, line=line)
            texts.append(row[spec.text_field])

    metrics = scoring.perplexity(loaded.model, loaded.tokenizer, texts, max_length=spec.max_length,
                                 stride=spec.stride, batch_size=max(1, batch_size // 2))
    return TaskResult(metrics, [], info={"tokens": metrics.pop("tokens"), "documents": len(texts)})


def _conversation_loss(loaded, spec: TaskSpec, rows: list[tuple[int, dict]], batch_size: int) -> TaskResult:
    from tunesmith.data.formats import row_to_example
    from tunesmith.data.templates import tokenize_examples
    from tunesmith.errors import TunesmithError
    from tunesmith.eval import scoring

    examples, problems = [], []
    for line, row in rows:
        ex, bad = row_to_example(row, "auto", {"file": spec.data, "line": line})
        if bad:
            problems += bad
        elif ex.messages and any(m["role"] == "assistant" for m in ex.messages):
            examples.append(ex)
    if problems:
        raise TunesmithError(problems, title=f"task '{spec.name}': rows that are neither text nor conversations:")
    if not examples:
        raise fail(f"task '{spec.name}': rows have no '{spec.text_field}' text and no assistant replies",
                   "use raw text rows (set text_field) or chat/instruction rows with replies", file=spec.data)
    tokenized, _, template_problems = tokenize_examples(loaded.tokenizer, examples, spec.max_length, "truncate")
    if template_problems:
        raise TunesmithError(template_problems, title=f"task '{spec.name}': the chat template refused rows:")
    metrics = scoring.conversation_loss(loaded.model, loaded.tokenizer, tokenized, batch_size=max(1, batch_size // 2))
    return TaskResult(metrics, [], info={"tokens": metrics.pop("tokens"), "documents": len(examples)})


def generate(loaded, spec: TaskSpec, rows: list[tuple[int, dict]], batch_size: int,
             seed: int = 0) -> tuple[list[str], list[list[str]], list[int]]:
    """Prompts, the model's answers (`samples` per prompt) and their lengths in tokens."""
    from tunesmith.inference import generate as gen

    prompts = [render(spec.prompt, row, spec, line) for line, row in rows]
    if spec.chat:
        inputs = [([{"role": "system", "content": spec.system}] if spec.system else [])
                  + [{"role": "user", "content": p}] for p in prompts]
    else:
        inputs = prompts
    answers: list[list[str]] = [[] for _ in prompts]
    for s in range(spec.samples):
        # Decoding one token costs about the same for 8 rows as for 32 on a CPU (each step reads all
        # the weights): batches 4x the suite's, as scoring's, doubled GSM8K items/s on 2 cores
        # (bench/eval_speed.py). generate() sorts prompts by length, so padding stays small.
        out = gen(loaded, inputs, max_new_tokens=spec.max_new_tokens, temperature=spec.temperature,
                  batch_size=batch_size * GENERATION_BATCH_SCALE, seed=seed + s, chat=spec.chat,
                  stop=spec.stop or None)
        for k, text in enumerate(out):
            answers[k].append(text)
    tok = loaded.tokenizer
    lengths = [len(tok(a[0], add_special_tokens=False)["input_ids"]) for a in answers]
    return prompts, answers, lengths


def run_generative(loaded, spec: TaskSpec, rows: list[tuple[int, dict]], batch_size: int,
                   encoder=None) -> TaskResult:
    prompts, answers, lengths = generate(loaded, spec, rows, batch_size)
    first = [a[0] for a in answers]
    if spec.type == "generation":
        from tunesmith.eval.metrics import generation_metrics

        refs = [render(spec.reference, row, spec, line) for line, row in rows]
        metrics = generation_metrics(spec.metrics, first, refs, encoder=encoder)
        records = [{"prompt": p, "reference": r, "output": o} for p, r, o in zip(prompts, refs, first)]
        return TaskResult(metrics, records, lengths)
    if spec.type == "ifeval":
        from tunesmith.eval import ifeval

        scored = ifeval.score([row for _, row in rows], first)
        per = scored.pop("per_prompt")
        records = [{"prompt": p, "reference": ", ".join(row.get("instruction_id_list", [])), "output": o,
                    "strict": s["strict"], "loose": s["loose"]} for p, (_, row), o, s in zip(prompts, rows, first, per)]
        return TaskResult(scored, records, lengths)
    if spec.type == "code":
        from tunesmith.eval import code

        problems = [row for _, row in rows]
        answers = [[_code_of(c) for c in cs] for cs in answers]
        samples = [{"task_id": row["task_id"], "completion": c} for (_, row), cs in zip(rows, answers) for c in cs]
        scored = code.evaluate(problems, samples, ks=tuple(spec.ks), timeout_s=spec.timeout_s)
        results = scored.pop("results", [])
        passed = {}
        for r in results:
            passed.setdefault(r["task_id"], []).append(r["passed"])
        records = [{"prompt": p, "reference": row.get("canonical_solution", ""), "output": cs[0],
                    "passed": passed.get(row["task_id"], [])} for p, (_, row), cs in zip(prompts, rows, answers)]
        return TaskResult({k: v for k, v in scored.items() if isinstance(v, float)}, records, lengths)
    # judge: the answers are scored later, against the other model's (eval/judge.py)
    records = [{"prompt": p, "reference": "", "output": o} for p, o in zip(prompts, first)]
    return TaskResult({}, records, lengths)
