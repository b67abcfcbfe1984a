"""Benchmark: `tunesmith serve` decode throughput and latency per backend, and llama-cpp-python
called directly on the same GGUF (the llama.cpp backend should be within 10% of it).

Each backend runs as a real `tunesmith serve` process on localhost (--max-concurrent = --clients, so
every client decodes in the running batch), measured over HTTP with greedy, streamed chat
completions (`stream_options.include_usage`: completion tokens are counted from `usage`, never
assumed; the OpenAI API has no ignore-EOS switch). Per backend:
  single stream: one client at a time, tokens/s of each request (median over --singles prompts);
  --clients concurrent clients, each sending --rounds requests back to back: aggregate tokens/s
  (all completion tokens / wall time) and time to first token (first streamed text) p50 and p95.
The transformers backend batches continuously, so its aggregate should be several times its single
stream; llama.cpp holds one sequence, so its clients queue (aggregate ~ single, TTFT grows).

Serves the embedded SmolLM2-135M-Instruct (transformers) and its embedded GGUF (llama.cpp) by
default; --run serves a finished LoRA run and its q8_0 GGUF (exported first when missing).
Writes bench/results/serve_throughput.json and .md (or under --out). Usage:
    .venv/bin/python bench/serve_throughput.py [--clients 16] [--max-tokens 128] [--run runs/quickstart]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Write a detailed story about a lighthouse keeper who finds a message in a bottle.",
           "Explain step by step how a bicycle works, part by part.",
           "Describe a walk through a busy market in a large city, with sounds and smells.",
           "Write a long letter to a friend about learning to cook.",
           "Explain how rain forms, from the ocean to the clouds and back.",
           "Tell the history of a small village over three generations.",
           "Describe how to plan a garden, season by season.",
           "Write a travel diary entry about a train journey through mountains.",
           "Explain how a library organises its books, and why.",
           "Write a story about a cat who learns to open doors.",
           "Describe the life of a honey bee from egg to forager.",
           "Explain how to bake bread at home, from flour to loaf.",
           "Write a speech for the opening of a new school in a small town.",
           "Describe a thunderstorm over the sea as seen from a ship.",
           "Explain how a clock keeps time, from pendulum to quartz.",
           "Write a diary entry of a child's first day at the seaside."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream(port: int, model: str, prompt: str, max_tokens: int) -> dict:
    """One greedy streamed chat completion: its completion tokens, seconds, and time to first text."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    t0 = time.perf_counter()
    first, tokens = None, None
    with urllib.request.urlopen(req, timeout=1800) as r:
        for line in r:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"the server failed a request: {chunk['error']}")
            if first is None and any(c["delta"].get("content") for c in chunk.get("choices", [])):
                first = time.perf_counter() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    if tokens is None:
        raise RuntimeError("the stream carried no usage chunk")
    return {"tokens": tokens, "seconds": time.perf_counter() - t0, "ttft": first}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): small samples, no interpolation to hide them."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def start_server(target: str, backend: str, clients: int) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "serve", target, "--port", str(port),
                             "--backend", backend, "--max-concurrent", str(clients), "--max-queue", str(clients)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                return proc, port, json.load(r)["data"][0]["id"]
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server for {target} ({backend}) exited: {proc.stderr.read()[-2000:]}") from None
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server for {target} ({backend}) did not answer in 10 minutes")


def measure_server(target: str, backend: str, args) -> dict:
    proc, port, model = start_server(target, backend, args.clients)
    try:
        stream(port, model, "Hi", 8)  # warm-up
        singles = [stream(port, model, p, args.max_tokens) for p in PROMPTS[:args.singles]]
        results: list[list[dict]] = [[] for _ in range(args.clients)]
        errors: list[BaseException] = []

        def client(i: int) -> None:
            try:
                for k in range(args.rounds):
                    results[i].append(stream(port, model, PROMPTS[(i + k) % len(PROMPTS)], args.max_tokens))
            except BaseException as e:  # reported after the join, never lost in a thread
                errors.append(e)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise errors[0]
        done = [r for rs in results for r in rs]
        ttfts = [r["ttft"] for r in done if r["ttft"] is not None]
        tokens = sum(r["tokens"] for r in done)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            health = json.load(r)
        return {"backend": backend, "target": target,
                "single_stream_tokens_per_s": round(statistics.median(r["tokens"] / r["seconds"] for r in singles), 1),
                "single_stream_ttft_s": round(statistics.median(r["ttft"] for r in singles if r["ttft"]), 3),
                "clients": args.clients, "concurrent_tokens_per_s": round(tokens / wall, 1),
                "concurrent_tokens": tokens, "concurrent_requests": len(done), "concurrent_seconds": round(wall, 1),
                "ttft_p50_s": round(percentile(ttfts, 50), 3), "ttft_p95_s": round(percentile(ttfts, 95), 3),
                "server_max_batch_rows": health.get("max_batch")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure_direct(gguf: Path, args) -> dict:
    """llama-cpp-python on its own, the reference for the llama.cpp backend: greedy, streamed,
    the thread count our backend picks (one per free core) for prompt and decoding, n_ctx as our
    backend's default. OpenMP's wait policy is the environment's (the backend sets PASSIVE for
    itself): run this script with OMP_WAIT_POLICY=PASSIVE to compare like with like."""
    from llama_cpp import Llama

    from tunesmith.hardware import pick_threads

    threads = pick_threads()["threads"]
    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0)
    rates, ttfts = [], []
    for prompt in PROMPTS[:args.singles]:
        t0, first, tokens = time.perf_counter(), None, 0
        for chunk in llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=args.max_tokens,
                                                temperature=0, stream=True):
            if chunk["choices"][0]["delta"].get("content"):
                first = first or time.perf_counter() - t0
                tokens += 1  # one chunk per token in llama-cpp-python's stream
        rates.append(tokens / (time.perf_counter() - t0))
        ttfts.append(first or 0.0)
    return {"backend": "llama-cpp-python direct", "target": str(gguf),
            "single_stream_tokens_per_s": round(statistics.median(rates), 1),
            "single_stream_ttft_s": round(statistics.median(ttfts), 3)}


def machine() -> dict:
    from tunesmith.hardware import _cpu_model, usable_cores

    cpus, cores = usable_cores()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": _cpu_model(),
            "logical_cpus": len(cpus), "physical_cores": cores, "platform": platform.platform(),
            "python": platform.python_version(), "load_average_1m": round(os.getloadavg()[0], 2)}


def targets(args) -> tuple[str, Path]:
    """(what the transformers backend serves, the GGUF for llama.cpp)."""
    if args.run is None:
        from tunesmith.models.loading import resolve

        return "smollm2-135m-instruct", Path(resolve("smollm2-135m-instruct").path)
    run = Path(args.run)
    gguf = sorted((run / "export").glob("**/*q8_0*.gguf"))
    if not gguf:
        import tunesmith

        tunesmith.export(run, "gguf", quant=["q8_0"])
        gguf = sorted((run / "export").glob("**/*q8_0*.gguf"))
    return str(run), gguf[0]


def write(rows: list[dict], args, meta: dict) -> None:
    by = {r["backend"]: r for r in rows}
    ratio = None
    if "llamacpp" in by and "llama-cpp-python direct" in by:
        ratio = round(by["llamacpp"]["single_stream_tokens_per_s"] / by["llama-cpp-python direct"]
                      ["single_stream_tokens_per_s"], 3)
    speedup = {r["backend"]: round(r["concurrent_tokens_per_s"] / r["single_stream_tokens_per_s"], 2)
               for r in rows if "concurrent_tokens_per_s" in r}
    summary = {"machine": meta, "settings": vars(args), "rows": rows, "llamacpp_backend_vs_direct": ratio,
               "concurrent_over_single": speedup}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    n = args.clients
    lines = ["# tunesmith serve throughput (CPU)", "",
             f"`.venv/bin/python bench/serve_throughput.py {' '.join(sys.argv[1:])}`".replace(" `", "`")
             + "; greedy streamed chat "
             f"completions over HTTP. {meta['date']}, {meta['cpu']}, {meta['physical_cores']} cores "
             f"({meta['logical_cpus']} logical CPUs), load average {meta['load_average_1m']} at the start.", "",
             f"| backend | single stream tokens/s | {n} clients, aggregate tokens/s | aggregate / single "
             f"| TTFT p50 s | TTFT p95 s |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['single_stream_tokens_per_s']} | {r.get('concurrent_tokens_per_s', '-')} "
                     f"| {speedup.get(r['backend'], '-')} | {r.get('ttft_p50_s', '-')} | {r.get('ttft_p95_s', '-')} |")
    if ratio is not None:
        lines += ["", f"llama.cpp backend / llama-cpp-python direct, single stream: {ratio:.3f}"]
    (out / "serve_throughput.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="a finished LoRA run (default: the embedded SmolLM2)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--clients", type=int, default=16, help="concurrent streaming clients")
    ap.add_argument("--rounds", type=int, default=2, help="requests each client sends back to back")
    ap.add_argument("--singles", type=int, default=3, help="single-stream requests (median)")
    ap.add_argument("--backends", default="transformers,llamacpp,direct",
                    help="comma-separated: transformers, llamacpp, direct (llama-cpp-python itself)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    meta = machine()
    hf_target, gguf = targets(args)
    rows = []
    for name in args.backends.split(","):
        if name == "transformers":
            rows.append(measure_server(hf_target, "transformers", args))
        elif name == "llamacpp":
            rows.append(measure_server(str(gguf), "llamacpp", args))
        elif name == "direct":
            rows.append(measure_direct(gguf, args))
        else:
            raise SystemExit(f"unknown backend '{name}': use transformers, llamacpp or direct")
        print(rows[-1], flush=True)
    write(rows, args, meta)


if __name__ == "__main__":
    main()
