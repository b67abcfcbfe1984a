"""Export: merged checkpoints, GGUF, Ollama, parity, model card."""
