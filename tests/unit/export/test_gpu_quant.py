"""GPU-side quantized export (gptq, awq): without CUDA it refuses before writing anything, with a
message that names the cause and the way out; the calibration set is the run's own conversations.

The quantization itself needs a CUDA device (gptqmodel, llm-compressor); it is run by
bench/gpu_quant_export.py on a GPU machine, not here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir) -> Path:
    import tunesmith

    root = tmp_path_factory.mktemp("gpuq-run")
    data = root / "train.jsonl"
    data.write_text("\n".join((QUICKSTART / "train.jsonl").read_text().splitlines()[:12]) + "\n")
    return tunesmith.train({
        "name": "tiny-gpuq", "output_dir": str(root / "runs"), "seed": 3,
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": [str(data)], "max_length": 256},
        "train": {"max_steps": 1, "batch_size": 4, "logging_steps": 1, "save_steps": 100, "precision": "fp32"},
        "lora": {"r": 4, "alpha": 8}}, show_progress=False)


@pytest.mark.parametrize("fmt,extra", [("gptq", "gptq"), ("awq", "awq")])
def test_cli_refuses_without_cuda_and_writes_nothing(tiny_run, tmp_path, capsys, fmt, extra):
    import torch

    from tunesmith.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    out = tmp_path / "exp"
    code = main(["export", str(tiny_run), "--format", fmt, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--format {fmt} quantizes on an NVIDIA GPU with CUDA" in err
    assert f"tunesmith[{extra}]" in err and "--format gguf --quant q4_k_m" in err
    assert not out.exists(), "a refused export must not leave a half-written folder"


def test_missing_library_is_named_with_its_extra():
    from tunesmith.errors import TunesmithError
    from tunesmith.export import gpu_quant

    for fmt, (lib, extra, _) in gpu_quant.FORMATS.items():
        import importlib.util

        if importlib.util.find_spec(lib) is not None:
            continue
        with pytest.raises(TunesmithError) as e:
            gpu_quant.check_can_run(fmt, cuda=True)
        assert f"needs the {lib} package" in str(e.value) and f"tunesmith[{extra}]" in str(e.value)


@pytest.mark.parametrize("kw,field", [({"bits": 3}, "--bits"), ({"group_size": 100}, "--group-size"),
                                      ({"group_size": 8}, "--group-size")])
def test_bad_bits_and_group_sizes_are_refused_first(kw, field):
    from tunesmith.errors import TunesmithError
    from tunesmith.export import gpu_quant

    with pytest.raises(TunesmithError) as e:
        gpu_quant.check_can_run("gptq", cuda=True, **kw)
    assert e.value.problems[0].field == field


def test_unknown_format_is_refused():
    from tunesmith.errors import TunesmithError
    from tunesmith.export import gpu_quant

    with pytest.raises(TunesmithError, match="unknown GPU quantization format 'exl2'"):
        gpu_quant.check_can_run("exl2", cuda=True)


def test_calibration_is_the_runs_conversations_with_replies_then_generic_prompts(tiny_run):
    import json

    from transformers import AutoTokenizer

    from tunesmith.export import gpu_quant
    from tunesmith.export.parity import PROMPTS

    tok = AutoTokenizer.from_pretrained(tiny_run / "adapter")
    texts = gpu_quant.calibration_texts(tiny_run, tok, n=5)
    assert len(texts) == 5 + len(PROMPTS)
    replies = [json.loads(line)["output"] for line in (QUICKSTART / "train.jsonl").read_text().splitlines()[:12]]
    # the first five are whole conversations: the trained reply is inside, followed by the end of turn
    for text in texts[:5]:
        assert any(r.strip() in text for r in replies)
        assert text.rstrip().endswith("<|im_end|>")
    assert all(p in t for p, t in zip(PROMPTS, texts[5:]))
    assert len(set(texts)) == len(texts)


def test_quantized_folder_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """The library's writer stands in for gptqmodel (CUDA only): a crash mid-way leaves the earlier
    export as it was and no folder that looks finished; a finished one holds no earlier shard."""
    import importlib.metadata

    from tunesmith.export import gpu_quant

    out = tmp_path / "export" / "gptq"
    out.mkdir(parents=True)
    (out / "model-00002-of-00002.safetensors").write_text("an earlier export's shard")

    def crash(hf_dir, folder, *args):
        (folder / "model.safetensors").write_text("half")
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gpu_quant, "_gptq", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        gpu_quant.quantize("gptq", tmp_path / "hf", out, ["text"])
    assert sorted(p.name for p in out.iterdir()) == ["model-00002-of-00002.safetensors"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["gptq"]  # no temporary folder left

    monkeypatch.setattr(gpu_quant, "_gptq", lambda hf, folder, *a: (folder / "model.safetensors").write_text("q"))
    monkeypatch.setattr(importlib.metadata, "version", lambda lib: "0.0-test")
    info = gpu_quant.quantize("gptq", tmp_path / "hf", out, ["text"])
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert info["dir"] == str(out) and info["library_version"] == "0.0-test"
    assert sorted(p.name for p in out.parent.iterdir()) == ["gptq"]
