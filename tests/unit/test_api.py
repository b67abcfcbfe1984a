"""tunesmith.api is a thin layer: the data package never imports it (nor templates the packer),
rewrites and synthesis take an injected `generate` function, and the data commands write the
same files through it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import tunesmith
from tunesmith import api
from tunesmith.data.augment import augment_examples, back_translate, generate_replies, paraphrase
from tunesmith.data.formats import Example
from tunesmith.data.synth import self_instruct
from tunesmith.errors import TunesmithError

PACKAGE = Path(tunesmith.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module a source file imports (lazily inside functions too), as dotted names; for
    `from a import b` both a and a.b, since b may be a submodule."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


# --------------------------------------------------------------------------- import direction


def test_the_data_package_never_imports_the_api():
    sources = sorted((PACKAGE / "data").rglob("*.py"))
    assert len(sources) > 10  # the scan really looks at the package
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in _imports(p) if m.startswith("tunesmith.api"))
                 for p in sources}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_sees_lazy_and_from_imports(tmp_path):
    # The check above must be able to fail: an import inside a function, and `from tunesmith import api`.
    src = tmp_path / "bad.py"
    src.write_text("def f():\n    from tunesmith import api\n    import tunesmith.api.x\n")
    assert {"tunesmith.api", "tunesmith.api.x"} <= _imports(src)


def test_templates_does_not_import_pack():
    # pack imports templates (IGNORE_INDEX, Tokenized); windows moved to templates so the edge runs one way.
    assert not {m for m in _imports(PACKAGE / "data" / "templates.py") if m.startswith("tunesmith.data.pack")}
    from tunesmith.data import pack, templates

    assert pack.windows is templates.windows  # the old import line keeps working


# --------------------------------------------------------------------------- injected generate


class FakeGenerate:
    """Records every call; replies are "reply N to: <first words of the prompt>"."""

    def __init__(self, reply=None, count_tokens=None):
        self.calls: list[tuple[list, dict]] = []
        self.reply = reply or (lambda conv, n: f"Reply {n} to: {conv[-1]['content'][-30:]}")
        if count_tokens:
            self.count_tokens = count_tokens
        self.description = "fake-model"

    def __call__(self, conversations, **kw):
        self.calls.append((conversations, kw))
        start = sum(len(c) for c, _ in self.calls[:-1])
        return [self.reply(conv, start + i) for i, conv in enumerate(conversations)]


def test_generate_replies_sends_user_turns_in_seeded_batches():
    fake = FakeGenerate()
    out = generate_replies(fake, [f"prompt {i}" for i in range(5)], max_new_tokens=9, temperature=0.3, seed=10,
                           batch_size=2)
    assert [len(c) for c, _ in fake.calls] == [2, 2, 1]
    assert fake.calls[0][0][1] == [{"role": "user", "content": "prompt 1"}]
    # The seed moves on with each batch, as it did when rewrites called tunesmith.generate.
    assert [kw for _, kw in fake.calls] == [{"max_new_tokens": 9, "temperature": 0.3, "seed": s} for s in (10, 12, 14)]
    assert out == [(f"Reply {i} to: prompt {i}", False) for i in range(5)]


def test_a_generate_that_counts_tokens_marks_cut_replies():
    fake = FakeGenerate(reply=lambda conv, n: "long " * 20 if n == 1 else "short",
                        count_tokens=lambda text: len(text.split()))
    out = paraphrase(["one text", "another text"], fake, max_new_tokens=8)
    assert out == ["short", ""]  # the reply that used up max_new_tokens is no paraphrase
    assert fake.calls[0][1]["temperature"] == 0.7 and "another text" in fake.calls[0][0][1][0]["content"]


def test_back_translate_goes_there_and_back_greedily():
    fake = FakeGenerate(reply=lambda conv, n: f"Texte numero {n}" if n < 2 else "The cat sits on the warm mat today.")
    out = back_translate(["The cat is on the mat.", "A dog runs."], fake, "Klingon")  # Klingon: not checked
    assert len(fake.calls) == 2 and all(kw["temperature"] == 0.0 for _, kw in fake.calls)
    assert "from Klingon into English" in fake.calls[1][0][0][0]["content"]
    assert out == ["The cat sits on the warm mat today."] * 2


def test_augment_examples_uses_the_injected_generate():
    data = [Example([{"role": "user", "content": f"Question number {i} about cats?"},
                     {"role": "assistant", "content": "An answer."}], "t.jsonl", i + 1) for i in range(4)]
    fake = FakeGenerate(reply=lambda conv, n: f"Rewritten question {n} about felines?")
    out, report = augment_examples(data, methods=["paraphrase"], fraction=1.0, seed=0, generate=fake)
    assert len(fake.calls) == 1 and len(fake.calls[0][0]) == 4
    assert report["methods"]["paraphrase"]["created"] == 4
    assert {e.messages[0]["content"] for e in out} == {f"Rewritten question {i} about felines?" for i in range(4)}
    with pytest.raises(TunesmithError, match="need a model"):
        augment_examples(data, methods=["paraphrase"], fraction=1.0, seed=0)


def test_self_instruct_uses_the_injected_generate_and_names_it():
    seeds = [{"id": f"s{i}", "instruction": f"Name {i} colours of the rainbow in order.",
              "instances": [{"input": "", "output": "red"}]} for i in range(3)]

    def reply(conv, n):
        if conv[-1]["content"].startswith("List"):  # asked to carry out a task made in the first call
            return "Output: Red, orange and yellow."
        return f"Instruction: List {n} famous rivers of South America by length."

    fake = FakeGenerate(reply=reply)
    rows = self_instruct(seeds, fake, n=2, seed=0, batch_size=2, num_examples=2)
    assert [(len(c), kw["temperature"]) for c, kw in fake.calls] == [(2, 0.7), (2, 0.0)]  # sampled, then greedy
    assert [(r["instruction"], r["output"], r["generator"]) for r in rows] == [
        (f"List {i} famous rivers of South America by length.", "Red, orange and yellow.", "fake-model")
        for i in range(2)]


# --------------------------------------------------------------------------- api data commands


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_api_data_split_writes_each_part_a_report_and_a_manifest(tmp_path):
    rows = [{"text": f"row {i}", "label": i % 2, "user": f"u{i // 4}"} for i in range(40)]
    path = _write(tmp_path / "rows.jsonl", rows)
    out = api.data_split(path, {"train": 0.75, "test": 0.25}, method="grouped", key="user", seed=1,
                         out=tmp_path / "split")
    assert out == tmp_path / "split"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "split_report.json", "test.jsonl", "train.jsonl"]
    parts = {n: [json.loads(x) for x in (out / f"{n}.jsonl").read_text().splitlines()] for n in ("train", "test")}
    assert sorted(r["text"] for part in parts.values() for r in part) == sorted(r["text"] for r in rows)
    assert not {r["user"] for r in parts["train"]} & {r["user"] for r in parts["test"]}
    report = json.loads((out / "split_report.json").read_text())
    assert list(report) == ["method", "key", "ratios", "seed", "splits", "leakage"] and report["leakage"] == {}
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest) == ["step", "inputs", "outputs", "seed", "versions"]
    assert manifest["inputs"][0]["rows"] == 40 and manifest["outputs"]["train"]["rows"] == len(parts["train"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(TunesmithError, match="1 unreadable rows"):
        api.data_split(bad, {"a": 0.5, "b": 0.5}, out=tmp_path / "not-written")
    assert not (tmp_path / "not-written").exists()


def test_api_data_clean_writes_rows_a_report_and_a_manifest(tmp_path):
    rows = [{"instruction": f"Explain topic number {i} in a short paragraph.", "output": f"Topic {i} is about "
             f"the subject of item {i}, explained clearly."} for i in range(6)]
    path = _write(tmp_path / "train.jsonl", rows + rows[:2])  # two exact duplicates
    out = api.data_clean(path, ["data.clean.pii=redact"], tmp_path / "clean")
    assert sorted(p.name for p in out.iterdir()) == ["clean.jsonl", "clean_report.json", "manifest.json"]
    kept = [json.loads(x) for x in (out / "clean.jsonl").read_text().splitlines()]
    assert len(kept) == 6
    assert set(json.loads((out / "clean_report.json").read_text())) == {"load", "clean"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest) == ["step", "inputs", "output", "rows_before", "rows_after", "records_sha256_before",
                              "records_sha256_after", "settings", "seed", "versions"]
    assert list(manifest["output"]) == ["path", "sha256", "rows"]
    assert (manifest["step"], manifest["rows_before"], manifest["rows_after"]) == ("clean", 8, 6)
    assert manifest["inputs"] == [{"path": str(path), "sha256": manifest["inputs"][0]["sha256"]}]
    assert manifest["settings"]["pii"] == "redact"


def test_api_validate_runs_the_recipe_preflight_only_for_a_run(tmp_path, monkeypatch, tiny_model_dir):
    import tunesmith.recipes

    calls = []
    monkeypatch.setattr(tunesmith.recipes, "preflight", lambda cfg: calls.append(cfg.recipe))
    data = _write(tmp_path / "train.jsonl", [{"instruction": f"Say {i}.", "output": f"{i}"} for i in range(8)])
    config = {"name": "t", "model": {"name": str(tiny_model_dir)}, "data": {"train": [str(data)], "max_length": 64}}
    report = api.validate(config, kinds=("chat", "classification"))
    assert calls == ["sft"]
    assert report["data"]["train"]["kinds"] == {"chat": 8} and report["data"]["train"]["rows"] == 8
    api.validate(config)
    assert calls == ["sft"]  # data-only checks: no recipe code runs


def test_public_functions_named_like_subpackages_still_work_after_those_are_imported(tmp_path):
    """tunesmith.export / .models / .serve are functions and subpackages: importing a submodule must not
    turn the public function into a module that cannot be called."""
    import importlib

    import tunesmith
    from tunesmith.errors import TunesmithError

    for sub in ("tunesmith.export.merge", "tunesmith.models.loading", "tunesmith.serve.schema"):
        importlib.import_module(sub)
    assert any(m["name"] == "smollm2-135m-instruct" for m in tunesmith.models()["embedded"])
    with pytest.raises(TunesmithError, match="not a run directory"):
        tunesmith.export(tmp_path, "hf")
    assert tunesmith.export.merge.check_exportable is not None  # the module path still resolves
