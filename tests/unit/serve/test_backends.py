"""tunesmith.serve.backends: one module per backend, every name importable from the package, and
importing it stays cheap (torch, transformers, peft and llama_cpp load only when a backend starts)."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_come_from_the_package():
    from tunesmith.serve import backends

    for name in backends.__all__:
        assert getattr(backends, name) is not None, name
    assert backends.TransformersBackend.__module__ == "tunesmith.serve.backends.transformers_backend"
    assert backends.LlamaCppBackend.__module__ == "tunesmith.serve.backends.llamacpp_backend"
    assert backends.run_vllm.__module__ == "tunesmith.serve.backends.vllm_backend"
    assert backends.Row.__module__ == backends.Sampling.__module__ == "tunesmith.serve.backends.base"
    assert backends.model_id("/models/tiny.gguf") == "tiny" and backends.BASE == "__base__"


def test_importing_the_backends_loads_no_heavy_library():
    probe = ("import sys, tunesmith.serve.backends\n"
             "print(sorted(m for m in ('torch', 'transformers', 'peft', 'llama_cpp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
