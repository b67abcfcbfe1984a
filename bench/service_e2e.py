"""Benchmark: the fine-tuning service end to end on the embedded model, driven by the official
`openai` client only (examples/service/finetune_with_openai.py) against `tunesmith serve
smollm2-135m-instruct --jobs` on localhost: upload the quickstart rows, job with auto
hyperparameters, events to succeeded, checkpoints, a chat with the ft: model.

    .venv/bin/python bench/service_e2e.py

Writes bench/results/service_e2e.json and .md (server start-up is not counted).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "serve", "smollm2-135m-instruct", "--jobs",
                                   "--jobs-dir", tmp, "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            t0 = time.perf_counter()
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.5)
            started = time.perf_counter() - t0
            out = subprocess.run([sys.executable, str(ROOT / "examples" / "service" / "finetune_with_openai.py"),
                                  "--base-url", f"http://127.0.0.1:{port}/v1"], capture_output=True, text=True,
                                 check=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    summary = json.loads(out.stdout.strip().splitlines()[-1]) | {"server_start_seconds": round(started, 1)}
    dest = ROOT / "bench" / "results"
    (dest / "service_e2e.json").write_text(json.dumps(summary, indent=2))
    lines = ["# Fine-tuning service end to end (official openai client, embedded model)", "",
             "`.venv/bin/python bench/service_e2e.py`: upload the quickstart's 320 rows, create a job on "
             "smollm2-135m-instruct with auto hyperparameters, follow events to succeeded, list checkpoints, chat "
             "with the ft: model.", "",
             "| measure | value |", "|---|---|",
             f"| server start (model load) | {summary['server_start_seconds']} s |",
             f"| upload -> job succeeded | {summary['seconds_to_succeeded']} s |",
             f"| upload -> first ft: reply | {summary['seconds_total']} s |",
             f"| resolved hyperparameters | {summary['hyperparameters']} |",
             f"| trained tokens | {summary['trained_tokens']} |", f"| checkpoints listed | {summary['checkpoints']} |",
             f"| reply of the ft: model | `{summary['reply']}` |", "", "Client log:", "", "```text",
             *out.stdout.strip().splitlines()[-12:-1], "```"]
    (dest / "service_e2e.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
