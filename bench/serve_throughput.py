"""Benchmark: `tunesmith serve` decode throughput per backend, single stream and 8 concurrent clients,
and llama-cpp-python called directly on the same GGUF (the llama.cpp backend should be within 10%).

Each backend runs as a real `tunesmith serve` process on localhost, measured over HTTP with greedy
chat completions (the OpenAI API has no ignore-EOS switch, so completion tokens are counted from
`usage`, not assumed). Writes bench/results/serve_throughput.json and .md. Usage:
    .venv/bin/python bench/serve_throughput.py [--run runs/quickstart] [--max-tokens 128]
The run's q8_0 GGUF is exported first (tunesmith export --format gguf) when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
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
           "Write a travel diary entry about a train journey through mountains."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def body(model: str, prompt: str, max_tokens: int) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0}


def measure_server(target: str, backend: str, max_tokens: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "serve", target, "--port", str(port),
                             "--backend", backend, "--max-concurrent", "8"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        model = None
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    model = json.load(r)["data"][0]["id"]
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"server for {target} ({backend}) exited: {proc.stderr.read()[-2000:]}") from None
                time.sleep(0.5)
        post(port, body(model, "Hi", 8))  # warm-up
        singles = []
        for prompt in PROMPTS[:3]:
            t0 = time.perf_counter()
            r = post(port, body(model, prompt, max_tokens))
            singles.append(r["usage"]["completion_tokens"] / (time.perf_counter() - t0))
        results: list[dict] = [None] * 8

        def client(i: int) -> None:
            results[i] = post(port, body(model, PROMPTS[i], max_tokens))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        tokens = sum(r["usage"]["completion_tokens"] for r in results)
        return {"backend": backend, "target": target,
                "single_stream_tokens_per_s": round(statistics.median(singles), 1),
                "concurrent8_tokens_per_s": round(tokens / wall, 1), "concurrent8_tokens": tokens,
                "concurrent8_seconds": round(wall, 1)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure_direct(gguf: Path, max_tokens: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0)
    rates = []
    for prompt in PROMPTS[:3]:
        t0 = time.perf_counter()
        r = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0)
        rates.append(r["usage"]["completion_tokens"] / (time.perf_counter() - t0))
    return {"backend": "llama-cpp-python direct", "target": str(gguf),
            "single_stream_tokens_per_s": round(statistics.median(rates), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(ROOT / "runs" / "quickstart"), help="a finished LoRA run")
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    run = Path(args.run)
    gguf = sorted((run / "export").glob("**/*q8_0*.gguf"))
    if not gguf:
        import tunesmith

        tunesmith.export(run, "gguf", quant=["q8_0"])
        gguf = sorted((run / "export").glob("**/*q8_0*.gguf"))
    rows = [measure_server(str(run), "transformers", args.max_tokens),
            measure_server(str(gguf[0]), "llamacpp", args.max_tokens),
            measure_direct(gguf[0], args.max_tokens)]
    for r in rows:
        print(r, flush=True)
    ratio = rows[1]["single_stream_tokens_per_s"] / rows[2]["single_stream_tokens_per_s"]
    summary = {"rows": rows, "llamacpp_backend_vs_direct": round(ratio, 3), "max_tokens": args.max_tokens,
               "cpu_count": os.cpu_count()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# tunesmith serve throughput (SmolLM2-135M-Instruct + the quickstart adapter, CPU)", "",
             f"`.venv/bin/python bench/serve_throughput.py --max-tokens {args.max_tokens}`; greedy chat completions "
             f"over HTTP on {os.cpu_count()} cores.", "",
             "| backend | single stream tokens/s | 8 concurrent clients, aggregate tokens/s |", "|---|---:|---:|"]
    lines += [f"| {r['backend']} | {r['single_stream_tokens_per_s']} | {r.get('concurrent8_tokens_per_s', '-')} |"
              for r in rows]
    lines += ["", f"llama.cpp backend / llama-cpp-python direct, single stream: {ratio:.3f}", ""]
    (out / "serve_throughput.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
