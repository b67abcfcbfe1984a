"""Generation backends for `tunesmith serve`.

- TransformersBackend (default): one base model and any number of peft LoRA adapters. A single
  worker thread owns the model and batches continuously: up to `max_batch` sequences decode
  together, one token per step over one KV cache; a request arriving meanwhile is prefilled and
  joins at the next step, a finished one leaves at once. Each row has its own adapter (peft's
  mixed-adapter batches: `adapter_names=[...]`, "__base__" for no adapter) and its own sampling.
- LlamaCppBackend: a GGUF through llama-cpp-python on CPU, one sequence at a time (llama-cpp-python's
  `Llama` holds a single sequence); no runtime adapters.
- vLLM: not an in-process backend; `vllm_command`/`run_vllm` start vLLM's own OpenAI server with
  its LoRA support where a CUDA GPU is present, and refuse clearly elsewhere.

One module per backend (transformers_backend, llamacpp_backend, vllm_backend) over base, which
holds what they share; import them from here (app.py, schema.py and the tests do).
"""

from tunesmith.serve.backends.base import (
    ADAPTER_NAME,
    Prompt,
    Row,
    Sampling,
    adapter_folder,
    check_adapter_name,
    model_id,
    resolve_adapter_path,
)
from tunesmith.serve.backends.llamacpp_backend import LlamaCppBackend
from tunesmith.serve.backends.transformers_backend import BASE, TransformersBackend
from tunesmith.serve.backends.vllm_backend import run_vllm, vllm_command

__all__ = ["TransformersBackend", "LlamaCppBackend", "Row", "Prompt", "Sampling", "vllm_command", "run_vllm",
           "ADAPTER_NAME", "BASE", "adapter_folder", "check_adapter_name", "model_id", "resolve_adapter_path"]
