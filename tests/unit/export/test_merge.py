"""Export to a merged transformers checkpoint: merge, parity check, model card, refusals.

One tiny LoRA run (2-layer random Llama, 3 steps at a high learning rate so the adapter really
changes the outputs) is trained once for the module and exported once; the other tests copy its
run directory and change one thing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
# 4 generic prompts + 4 run rows at least, then more rows up to parity.MIN_POSITIONS positions: the
# tiny model never ends a reply, so 25 prompts x 12 tokens, seconds on it.
FAST = {"parity_prompts": 4, "max_new_tokens": 12}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matmuls are too small to split: on 2 busy cores a second thread only waits
    (measured: this file took 72 s with 2 threads, 29 s with 1, under the same load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir) -> Path:
    import tunesmith

    root = tmp_path_factory.mktemp("export-run")
    data = root / "train.jsonl"
    data.write_text("\n".join((QUICKSTART / "train.jsonl").read_text().splitlines()[:24]) + "\n")
    run_dir = tunesmith.train({
        "name": "tiny-export", "output_dir": str(root / "runs"), "seed": 7,
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": [str(data)], "validation_fraction": 0.25, "max_length": 256},
        "train": {"max_steps": 3, "batch_size": 4, "learning_rate": 3e-2, "logging_steps": 1, "save_steps": 100,
                  "precision": "fp32"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}, show_progress=False)
    # An evaluated run carries eval/results.json (shape as tunesmith.eval writes it); the card shows it.
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text(json.dumps({
        "suite": "mini", "created": "2026-11-29T00:00:00Z", "models": {"base": "tiny", "tuned": "tiny + adapter"},
        "tasks": [{"name": "records", "type": "generation", "n": 30,
                   "metrics": {"base": {"json_valid": 0.25, "chrf": 30.5},
                               "tuned": {"json_valid": 1.0, "chrf": 92.0}}}]}))
    return run_dir


@pytest.fixture(scope="module")
def exported(tiny_run) -> Path:
    from tunesmith.export.run import export

    return export(tiny_run, "hf", **FAST)


def _copy_run(run_dir: Path, dest: Path, *, config: dict | None = None, manifest: dict | None = None,
              adapter: bool = True) -> Path:
    """A copy of the run's config, manifest (and adapter) with some keys changed."""
    dest.mkdir(parents=True)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    for section, values in (config or {}).items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    man = {**json.loads((run_dir / "manifest.json").read_text()), **(manifest or {})}
    (dest / "manifest.json").write_text(json.dumps(man))
    if adapter:
        shutil.copytree(run_dir / "adapter", dest / "adapter")
    return dest


def _logits(model, ids):
    import torch

    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_merged_checkpoint_loads_in_plain_transformers_and_equals_base_plus_adapter(tiny_run, exported,
                                                                                   tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = exported / "hf"
    assert (hf / "model.safetensors").is_file() and not (hf / "adapter_config.json").exists()
    assert (hf / "model.safetensors").stat().st_mode & 0o777 == 0o644  # safetensors alone writes 0600
    merged = AutoModelForCausalLM.from_pretrained(hf)
    tok = AutoTokenizer.from_pretrained(hf)
    run_tok = AutoTokenizer.from_pretrained(tiny_run / "adapter")
    assert tok.chat_template and tok.chat_template == run_tok.chat_template
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn in merged.generation_config.eos_token_id

    text = tok.apply_chat_template([{"role": "user", "content": "Extract: Ana Lopez, 31, nurse in Lima."}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    base_logits = _logits(base, ids)
    tuned = PeftModel.from_pretrained(base, exported / "adapter").eval()  # the adapter copy loads with peft
    tuned_logits, merged_logits = _logits(tuned, ids), _logits(merged, ids)
    # The adapter really changed the model, and the merge reproduces base + adapter.
    assert (tuned_logits - base_logits).abs().max() > 1e-2
    assert (merged_logits - tuned_logits).abs().max() < 1e-4


def test_parity_of_the_merged_export_is_perfect_and_the_manifest_hashes_the_files(exported):
    results = json.loads((exported / "parity.json").read_text())
    assert [r["candidate"] for r in results] == ["hf"]
    r = results[0]
    assert r["passed"] and r["top1_agreement"] == 1.0 and r["greedy_text_agreement"] == 1.0
    assert r["first_divergence"] is None and r["kl_mean"] < 1e-6  # an fp32 merge: rounding only
    # 4 generic prompts, then the run's 6 validation rows, then training rows until 300 positions
    assert r["positions"] >= 300 and r["top1_ci95_low"] >= 0.987 and r["prompts"] < 28
    names = [d["name"].split(":")[0] for d in r["details"]]
    assert names == [f"generic-{i}" for i in range(1, 5)] + ["validation"] * 6 + ["train"] * (r["prompts"] - 10)
    row = f"| hf | 1.000 | {r['top1_ci95_low']:.3f} | 0.0000 | {r['positions']} |"
    assert row in (exported / "parity.md").read_text()
    assert r["thresholds"] == {"top1_ci95_low": 0.95, "kl_mean": 0.002}

    manifest = json.loads((exported / "export_manifest.json").read_text())
    assert manifest["format"] == "hf" and manifest["parity"][0]["passed"] and not manifest["forced"]
    rows = {f["path"]: f for f in manifest["files"]}
    weights = exported / "hf" / "model.safetensors"
    assert rows["hf/model.safetensors"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert rows["hf/model.safetensors"]["bytes"] == weights.stat().st_size
    assert "adapter/adapter_model.safetensors" in rows


def test_model_card_has_front_matter_data_hashes_eval_and_parity(tiny_run, exported):
    card = (exported / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "other" and front["license_name"] == "see the base model's card"  # a local base
    assert {"tunesmith", "sft", "lora", "peft"} <= set(front["tags"])
    for heading in ("## Base model", "## Training data", "## Method and hyperparameters", "## Evaluation",
                    "## Export parity", "## Intended use and limitations", "## How to use"):
        assert heading in card, heading
    data = json.loads((tiny_run / "manifest.json").read_text())["data"][0]
    assert f"| `train.jsonl` | `{data['sha256']}` | unknown — fill in |" in card
    assert "| records | 30 | chrf | 30.5 | 92 | +61.5 |" in card
    assert "| LoRA rank / alpha / dropout | 4 / 8 / 0.0 |" in card
    parity = json.loads((exported / "parity.json").read_text())[0]
    assert f"| hf | 1.000 | {parity['top1_ci95_low']:.3f} | 0.0000 | {parity['positions']} | 1.000 | pass |" in card
    assert 'AutoModelForCausalLM.from_pretrained("hf")' in card and "PeftModel.from_pretrained" in card
    assert "llama-cli" not in card  # no GGUF was written, so no llama.cpp snippet
    assert (exported / "training_config.yaml").read_text() == (tiny_run / "config.yaml").read_text()


def test_data_licence_is_read_from_a_readme_beside_the_data(tmp_path):
    from tunesmith.export.card import UNKNOWN, data_licence

    (tmp_path / "sets" / "alpaca").mkdir(parents=True)
    (tmp_path / "sets" / "README.md").write_text(
        "| folder / file | rows | licence |\n|---|---|---|\n| alpaca/rows.jsonl | 100 | CC BY-NC 4.0 |\n")
    assert data_licence(tmp_path / "sets" / "alpaca" / "rows.jsonl") == "CC BY-NC 4.0"
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "README.md").write_text("---\nlicense: mit\n---\n# a dataset card\n")
    assert data_licence(tmp_path / "hub" / "x.jsonl") == "mit"
    assert data_licence(tmp_path / "other.jsonl") == UNKNOWN


def test_unfinished_and_classifier_runs_are_refused(tiny_run, tmp_path):
    from tunesmith.errors import TunesmithError
    from tunesmith.export.run import export

    running = _copy_run(tiny_run, tmp_path / "running", manifest={"status": "running"})
    with pytest.raises(TunesmithError, match=r"has not finished training \(status: running\)"):
        export(running, "hf")
    assert not (running / "export").exists()

    reward = _copy_run(tiny_run, tmp_path / "reward", config={"recipe": "reward"})
    with pytest.raises(TunesmithError, match="recipe: reward run, a sequence classifier") as e:
        export(reward, "hf")
    assert "export supports generative runs (recipe: sft, cpt, dpo" in str(e.value)

    with pytest.raises(TunesmithError, match="unknown export format 'onnx'"):
        export(tiny_run, "onnx")


def test_quantized_base_is_merged_into_fp32_weights_with_a_warning(tiny_run, exported, tmp_path):
    from safetensors.torch import load_file

    from tunesmith.export.card import write_card
    from tunesmith.export.merge import export_hf

    qlora = _copy_run(tiny_run, tmp_path / "qlora", config={"model": {"quantization": "nf4"}})
    info = export_hf(qlora, tmp_path / "out")
    assert len(info["warnings"]) == 1 and "nf4-quantized base" in info["warnings"][0]
    assert "fp32" in info["warnings"][0]
    # Merged into the full-precision base: the very weights of the plain export, not 4-bit rounded ones.
    a, b = load_file(tmp_path / "out" / "hf" / "model.safetensors"), load_file(exported / "hf" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].equal(b[k]) for k in a)
    card = write_card(qlora, tmp_path / "out", {**info, "parity": []}).read_text()
    assert "Export note: the adapter was trained on a nf4-quantized base" in card
    assert "loaded nf4-quantized for training (QLoRA)" in card


def test_full_finetune_run_is_resaved_with_end_of_turn_eos(tiny_run, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from tunesmith.export.merge import export_hf

    full = _copy_run(tiny_run, tmp_path / "full", config={"train": {"method": "full"}}, manifest={"output": "model"},
                     adapter=False)
    shutil.copytree(tiny_model_dir, full / "model")
    info = export_hf(full, tmp_path / "out")
    assert info["kind"] == "full" and info["adapter_dir"] is None and not (tmp_path / "out" / "adapter").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "hf")
    assert 2 in model.generation_config.eos_token_id  # <|im_end|>, the ChatML end of turn
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert all(p.equal(q) for p, q in zip(model.state_dict().values(), ref.state_dict().values()))


def test_a_broken_export_fails_parity_with_the_numbers_and_passes_with_force(tiny_run, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from tunesmith.errors import TunesmithError
    from tunesmith.export import merge
    from tunesmith.export.run import export

    real = merge.export_hf

    def broken(run_dir, out_dir):  # a mis-merge: the last layer's attention and MLP outputs are zeroed
        info = real(run_dir, out_dir)
        path = Path(info["hf_dir"]) / "model.safetensors"
        weights = load_file(path)
        for k in weights:
            if k.startswith("model.layers.1.") and k.endswith(("o_proj.weight", "down_proj.weight")):
                weights[k].zero_()
        save_file(weights, path, metadata={"format": "pt"})
        return info

    monkeypatch.setattr(merge, "export_hf", broken)
    with pytest.raises(TunesmithError, match=r"export parity check failed: hf: top-1 next-token agreement 0\.\d+ "
                                             r"over \d+ positions has a 95% lower bound of 0\.\d+, 0\.\d+ below the "
                                             r"threshold 0\.95; mean KL divergence \d+\.\d+ nats is") as e:
        export(tiny_run, "hf", tmp_path / "out", **FAST)
    assert "--force" in str(e.value)
    failed = json.loads((tmp_path / "out" / "parity.json").read_text())[0]
    assert not failed["passed"] and failed["top1_ci95_low"] < 0.95 and failed["kl_mean"] > 0.002
    assert f"lower bound of {failed['top1_ci95_low']:.3f}, {0.95 - failed['top1_ci95_low']:.3f} below" in str(e.value)
    assert failed["first_divergence"] is not None  # reported, not gated
    assert not (tmp_path / "out" / "README.md").exists()

    out = export(tiny_run, "hf", tmp_path / "out", force=True, **FAST)
    forced = json.loads((out / "parity.json").read_text())[0]
    assert not forced["passed"] and forced["forced"]
    assert forced["top1_agreement"] == failed["top1_agreement"]
    card = (out / "README.md").read_text()
    assert "**Warning: this export failed the parity check and was forced.**" in card
    assert json.loads((out / "export_manifest.json").read_text())["forced"] is True


def test_gguf_and_ollama_formats_are_wired_through_the_gguf_module(tiny_run, tmp_path, monkeypatch):
    """The orchestration of --format ollama with two types, on a stand-in for tunesmith.export.gguf
    (its real conversion has its own tests): q8_0 comes from the converter, q4_k_m from an f16
    conversion that is removed afterwards, every file gets a parity check with its type's
    thresholds, the Modelfile sits next to the first type, and the card and manifest list it all."""
    import sys
    import types

    import tunesmith.export
    from tunesmith.export.parity import HFCandidate
    from tunesmith.export.run import export

    calls = []
    fake = types.ModuleType("tunesmith.export.gguf")

    def convert(hf_dir, out_dir, outtype):
        calls.append(("convert", outtype))
        path = Path(out_dir) / f"converted-{outtype}.gguf"
        path.write_bytes(b"GGUF-" + outtype.encode())
        return path

    def quantize(f16_gguf, out_path, qtype):
        calls.append(("quantize", Path(f16_gguf).name, qtype))
        Path(out_path).write_bytes(Path(f16_gguf).read_bytes() + b"->" + qtype.encode())
        return Path(out_path)

    class GGUFCandidate(HFCandidate):  # answers with the merged checkpoint the file was made from
        def __init__(self, path):
            super().__init__(Path(path).parent.parent / "hf", name=f"gguf:{Path(path).name}")

    fake.convert, fake.quantize, fake.GGUFCandidate = convert, quantize, GGUFCandidate
    monkeypatch.setitem(sys.modules, "tunesmith.export.gguf", fake)
    monkeypatch.setattr(tunesmith.export, "gguf", fake, raising=False)

    out = export(tiny_run, "ollama", tmp_path / "out", quant=("q8_0", "q4_k_m"), **FAST)
    assert calls == [("convert", "q8_0"), ("convert", "f16"), ("quantize", "converted-f16.gguf", "q4_k_m")]
    assert sorted(p.name for p in (out / "gguf").iterdir()) == ["Modelfile", "tiny-export-q4_k_m.gguf",
                                                                "tiny-export-q8_0.gguf"]  # the f16 is gone
    assert "FROM ./tiny-export-q8_0.gguf" in (out / "gguf" / "Modelfile").read_text()
    results = json.loads((out / "parity.json").read_text())
    assert [(r["candidate"], r["kind"], r["thresholds"], r["passed"]) for r in results] == [
        ("hf", "exact", {"top1_ci95_low": 0.95, "kl_mean": 0.002}, True),
        ("gguf:tiny-export-q8_0.gguf", "q8_0", {"top1_ci95_low": 0.90, "kl_mean": 0.02}, True),
        ("gguf:tiny-export-q4_k_m.gguf", "q4_k_m", {"top1_ci95_low": 0.85, "kl_mean": 0.30}, True)]
    manifest_parity = json.loads((out / "export_manifest.json").read_text())["parity"]
    assert {"top1_agreement", "top1_ci95_low", "kl_mean", "positions", "prompts", "greedy_text_agreement",
            "first_divergence", "passed", "shortfall"} <= set(manifest_parity[0])
    card = (out / "README.md").read_text()
    assert "llama-cli -m gguf/tiny-export-q8_0.gguf" in card and "ollama create tiny-export -f gguf/Modelfile" in card
    assert {"gguf", "ollama"} <= set(yaml.safe_load(card.split("---\n")[1])["tags"])
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["gguf_types"] == ["q8_0", "q4_k_m"]
    assert {"gguf/tiny-export-q8_0.gguf", "gguf/tiny-export-q4_k_m.gguf", "gguf/Modelfile"} <= {
        f["path"] for f in manifest["files"]}


def test_parity_gate_statistics_on_known_logits():
    """compare() on hand-made logits: the Wilson bound, KL and first divergence, without a model."""
    import math

    import numpy as np

    from tunesmith.export import parity

    rng = np.random.default_rng(0)

    def row(n: int, name: str) -> dict:
        logits = (rng.normal(size=(n, 50)) * 4).astype(np.float32)
        reply = logits.argmax(-1).tolist()
        return {"name": name, "prompt": name, "reply": " ".join(map(str, reply)), "reply_ids": reply,
                "tokens": [0] + reply, "start": 1, "logits": logits, "top1": reply, "max_new_tokens": n,
                "reply_chars": [len(" ".join(map(str, reply[: i + 1]))) for i in range(n)]}

    class Fixed:  # answers with the reference's own logits, plus `shift` at a few positions
        def __init__(self, ref, shift=None, text=None):
            self.ref, self.shift, self.text, self.name = ref, shift or {}, text or {}, "fixed"

        def greedy(self, prompt, max_new):
            return self.text.get(prompt, next(r["reply"] for r in self.ref if r["prompt"] == prompt))

        def next_token_logits(self, ids):
            r = next(r for r in self.ref if r["tokens"] == ids)
            out = np.vstack([r["logits"], np.zeros((1, 50), np.float32)]).copy()
            for i, v in self.shift.get(r["name"], {}).items():
                out[i] += v
            return out

    ref = [row(150, "a"), row(150, "b")]
    same = parity.compare(ref, Fixed(ref), kind="exact")
    assert same["passed"] and same["top1_agreement"] == 1.0 and same["kl_mean"] == 0.0
    assert same["top1_ci95_low"] == round(300 / (300 + 1.959964 ** 2), 4)  # Wilson at p = 1: n / (n + z^2)
    assert same["first_divergence"] is None and same["shortfall"] == ""
    # 45 flipped positions (a large bump on another token) and one differing greedy text.
    a0 = ref[0]["top1"]
    bump = {i: np.eye(50, dtype=np.float32)[(a0[i] + 1) % 50] * 100 for i in range(45)}
    words = ref[0]["reply"].split(" ")
    changed = " ".join(words[:7] + ["x"] + words[8:])
    bad = parity.compare(ref, Fixed(ref, {"a": bump}, {"a": changed}), kind="q4_k_m")
    assert bad["top1_agreement"] == 0.85 and bad["top1_ci95_low"] < 0.85 and not bad["passed"]
    assert bad["kl_mean"] > 0.30 and bad["first_divergence"] == 7 and bad["greedy_text_agreement"] == 0.5
    assert "95% lower bound" in bad["shortfall"] and "mean KL divergence" in bad["shortfall"]
    # Identical logits but too few positions: the bound cannot reach the exact bar, and the error says why.
    short = [row(20, "c")]
    few = parity.compare(short, Fixed(short), kind="hf")
    assert not few["passed"] and math.isclose(few["top1_ci95_low"], 20 / (20 + 1.959964 ** 2), abs_tol=1e-4)
    assert "only 20 positions" in few["shortfall"] and "--force" in few["shortfall"]
