"""GGUF export: convert a merged checkpoint with llama.cpp's own converter, quantize with llama.cpp's
own quantizer, and run the result through llama.cpp (llama-cpp-python) for the parity check.

Nothing here reimplements llama.cpp. The `gguf` package on PyPI has a writer and quantizers but no
HF->GGUF converter; llama.cpp's `convert_hf_to_gguf.py` (with its `conversion/` package and the
matching `gguf-py`) ships inside the llama-cpp-python sdist. `--install-converter` (a set-up step,
never run at export time) extracts exactly those files into the tunesmith cache:

    python -m tunesmith.export.gguf --install-converter [--sdist llama_cpp_python-0.3.36.tar.gz]

The converter writes f32/f16/bf16/q8_0 itself. K-quants (q4_k_m, ...) need llama.cpp's C++
quantizer, which the llama_cpp runtime exposes as `llama_model_quantize`, so no llama-quantize
binary is needed either.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tunesmith.errors import fail

# The llama-cpp-python release whose runtime tunesmith uses; its sdist vendors the converter of the
# same llama.cpp commit, so files written by one are read by the other.
LLAMA_CPP_PYTHON = "0.3.36"
CONVERTER = "convert_hf_to_gguf.py"
# What the converter needs from the llama.cpp tree: the script, its per-architecture `conversion`
# package, the gguf-py it puts first on sys.path, and the chat templates some architectures embed.
CONVERTER_FILES = (CONVERTER, "conversion/", "gguf-py/gguf/", "models/templates/", "LICENSE")
STAMP = "tunesmith-converter.json"
OUTTYPES = ("f32", "f16", "bf16", "q8_0")
INSTALL_CMD = "python -m tunesmith.export.gguf --install-converter"
PIP_RUNTIME = f"pip install llama-cpp-python=={LLAMA_CPP_PYTHON}"


def converter_dir() -> Path:
    from tunesmith.models.loading import cache_root

    return cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON}"


def converter_path() -> Path:
    """llama.cpp's convert_hf_to_gguf.py installed by `--install-converter`, or a TunesmithError."""
    root = converter_dir()
    if not (root / STAMP).is_file() or not (root / CONVERTER).is_file():
        raise fail(f"llama.cpp's HF->GGUF converter is not installed (looked in {root})",
                   f"run `{INSTALL_CMD}` once (it downloads the llama-cpp-python {LLAMA_CPP_PYTHON} source "
                   "from PyPI and keeps only the converter; `make setup` does it)")
    return root / CONVERTER


def install_converter(sdist: str | Path | None = None) -> Path:
    """Extract the converter from the llama-cpp-python sdist (downloaded with pip unless given) into
    converter_dir(), then check that it imports with the installed packages. Returns its path."""
    root = converter_dir()
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                   f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if done.returncode != 0 or not found:
                raise fail(f"`{' '.join(cmd[2:])}` failed: {_tail(done.stderr or done.stdout)}",
                           "check the network / pip index, or pass a downloaded sdist with --sdist FILE")
            sdist = found[0]
        staging = root.with_name(root.name + f".tmp{os.getpid()}")
        n = _extract(Path(sdist), staging)
        if n == 0 or not (staging / CONVERTER).is_file():
            raise fail(f"{sdist} has no vendor/llama.cpp/{CONVERTER}",
                       f"use the llama-cpp-python {LLAMA_CPP_PYTHON} source distribution (.tar.gz)")
    check = _run_converter(staging / CONVERTER, ["--help"], timeout=300)
    if check.returncode != 0:  # a missing or too-old package the converter imports
        shutil.rmtree(staging, ignore_errors=True)
        raise fail(f"llama.cpp's converter does not start with this Python's packages: {_tail(check.stderr)}",
                   "install what the error names into this environment, then run the install again")
    (staging / STAMP).write_text(json.dumps({"llama_cpp_python": LLAMA_CPP_PYTHON, "sdist": Path(sdist).name,
                                             "files": n}, indent=1) + "\n")
    if root.exists():
        shutil.rmtree(root)
    os.replace(staging, root)
    return root / CONVERTER


def _extract(sdist: Path, dest: Path) -> int:
    """Copy CONVERTER_FILES out of the sdist's vendor/llama.cpp/ into dest; returns the file count."""
    shutil.rmtree(dest, ignore_errors=True)
    n = 0
    with tarfile.open(sdist) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"]:
                continue
            rel = "/".join(parts[3:])
            if ".." in parts or not any(rel == f or (f.endswith("/") and rel.startswith(f)) for f in CONVERTER_FILES):
                continue
            if "__pycache__" in parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            n += 1
    return n


def _run_converter(script: Path, args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    # The script puts its own gguf-py first on sys.path (unless NO_LOCAL_GGUF is set), so the
    # installed `gguf` package, possibly older, is not what it writes with. Offline: a local folder
    # needs no hub access, and a typo must not turn into a download.
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"} | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def convert(hf_dir: str | Path, out_dir: str | Path, outtype: str = "q8_0") -> Path:
    """Convert a transformers checkpoint folder to out_dir/model-<outtype>.gguf (chat template and
    tokenizer embedded) with llama.cpp's converter in a subprocess. Returns the file's path."""
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if outtype not in OUTTYPES:
        raise fail(f"GGUF outtype {outtype!r} is not one llama.cpp's converter writes",
                   f"use one of {', '.join(OUTTYPES)}; for 4-bit types convert to f16 and quantize() it")
    if not (hf_dir / "config.json").is_file():
        raise fail(f"{hf_dir} is not a transformers checkpoint (no config.json)",
                   "convert the merged export (tunesmith export RUN --format hf writes it to EXPORT/hf)")
    script = converter_path()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"model-{outtype}.gguf"
    tmp = out.with_name(out.name + ".partial")  # a failed conversion leaves no file that looks whole
    done = _run_converter(script, [str(hf_dir), "--outfile", str(tmp), "--outtype", outtype])
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise fail(f"llama.cpp's converter failed on {hf_dir} (exit {done.returncode}):\n{_tail(done.stderr)}",
                   "an architecture llama.cpp does not support cannot become GGUF; otherwise the lines above name "
                   "the problem")
    os.replace(tmp, out)
    return out


def quantize(gguf_f16: str | Path, out: str | Path, qtype: str = "q4_k_m", threads: int | None = None) -> Path:
    """Quantize an f16/bf16/f32 GGUF to `qtype` (q4_k_m, q4_0, q5_k_m, q6_k, ...) with llama.cpp's
    quantizer through the llama_cpp runtime (llama_model_quantize). Returns `out`.

    K-quants work on 256-wide blocks; llama.cpp falls back to a legacy type (q4_k -> q5_0) for a
    tensor whose rows are not a multiple of 256 (SmolLM2's hidden size 576: 180 of 272 tensors
    fall back, 6.2 bits per weight instead of ~4.9)."""
    import ctypes

    llama_cpp = _llama_cpp()
    gguf_f16, out = Path(gguf_f16), Path(out)
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if ftype is None:
        known = sorted(k.removeprefix("LLAMA_FTYPE_MOSTLY_").lower() for k in dir(llama_cpp)
                       if k.startswith("LLAMA_FTYPE_MOSTLY_"))
        raise fail(f"unknown GGUF quantization type {qtype!r}", f"use one of {', '.join(known)}")
    if not gguf_f16.is_file():
        raise fail(f"GGUF file {gguf_f16} does not exist", "convert the model with outtype f16 first")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or os.cpu_count() or 1
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    # llama.cpp logs a line per tensor through llama_cpp's logger; keep errors only.
    log = logging.getLogger("llama-cpp-python")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        rc = llama_cpp.llama_model_quantize(str(gguf_f16).encode(), str(tmp).encode(), ctypes.byref(params))
    finally:
        log.setLevel(level)
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise fail(f"llama.cpp could not quantize {gguf_f16} to {qtype} (return code {rc})",
                   "quantize from an f16, bf16 or f32 GGUF written by convert(); llama.cpp's log above says more")
    os.replace(tmp, out)
    return out


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise fail("the llama.cpp runtime (Python package llama_cpp) is not installed",
                   f"`{PIP_RUNTIME}` (builds llama.cpp from source, about 3 minutes on 2 cores; `make setup` "
                   "does it)") from None
    return llama_cpp


class GGUFCandidate:
    """A GGUF file run by llama.cpp, for tunesmith.export.parity (the Candidate protocol): greedy
    text and teacher-forced next-token logits, both on the reference tokenizer's ids (GGUF keeps
    the vocabulary, so ids mean the same tokens)."""

    def __init__(self, path: str | Path, n_ctx: int = 2048, threads: int | None = None, name: str | None = None):
        path = Path(path)
        if not path.is_file():
            raise fail(f"GGUF file {path} does not exist", "convert the model first")
        llama_cpp = _llama_cpp()
        self.path, self.name = path, name or f"gguf:{path.name}"
        # logits_all: the parity check reads the logits of every position of a teacher-forced
        # sequence, which llama.cpp only keeps when asked to.
        # llama_cpp decodes on cpu_count // 2 threads by default (one per physical core under SMT): a
        # single thread on a 2-core machine, 42 instead of 66 tokens/s. At least 2, then.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(512, n_ctx), logits_all=True,
                                   n_threads=threads or min(cores, max(2, cores // 2)), verbose=False, seed=0)

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """llama.cpp's tokenization of `text`, with no BOS added (special tokens parsed when written)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def greedy(self, prompt_text: str, max_new: int) -> str:
        # temperature 0 is llama.cpp's greedy sampler; repeat_penalty 1 = off, as in HF greedy.
        # Generation stops at the model's end-of-generation tokens (eos, <|im_end|>, <|eot_id|>, ...).
        self.llm.reset()
        out = self.llm.create_completion(self.tokenize(prompt_text), max_tokens=max_new, temperature=0.0,
                                         repeat_penalty=1.0)
        return out["choices"][0]["text"].strip()

    def next_token_logits(self, token_ids: list[int]):
        if len(token_ids) > self.llm.n_ctx():
            raise ValueError(f"{len(token_ids)} tokens do not fit the context of {self.llm.n_ctx()}")
        self.llm.reset()
        self.llm.eval(token_ids)
        return self.llm.scores[: len(token_ids)].copy()  # a view of llama.cpp's buffer, which the next call reuses

    def close(self) -> None:
        self.llm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunesmith.export.gguf", description=__doc__.split("\n\n")[0])
    ap.add_argument("--install-converter", action="store_true",
                    help="extract llama.cpp's convert_hf_to_gguf.py from the llama-cpp-python "
                         f"{LLAMA_CPP_PYTHON} sdist")
    ap.add_argument("--sdist", help="a downloaded llama_cpp_python-*.tar.gz to use instead of `pip download`")
    ap.add_argument("--where", action="store_true", help="print where the converter is (or should be)")
    args = ap.parse_args(argv)
    from tunesmith.errors import TunesmithError

    try:
        if args.install_converter:
            t0 = time.time()
            path = install_converter(args.sdist)
            print(f"llama.cpp converter installed: {path} ({time.time() - t0:.0f} s)")
        elif args.where:
            print(converter_dir() / CONVERTER)
        else:
            ap.print_help()
    except TunesmithError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
