"""The code sandbox and pass@k: known answers, and containment checks that assert the harm did not happen.

Every containment sample is written so that it would *pass* if the harm succeeded (it ends normally),
so a "failed" result is evidence of containment and not of a typo in the sample.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import combinations
from pathlib import Path

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.eval.code import evaluate, pass_at_k, run_sample

ALL_LAYERS = {"net", "fs", "uid", "seccomp", "py-socket", "rlimits"}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pids_with(marker: str) -> list[int]:
    """Processes (other than this one) whose command line contains `marker`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# --- pass@k


def test_pass_at_k_equals_enumeration_over_subsets():
    for n in range(1, 8):
        for c in range(0, n + 1):
            items = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(items, k))
                brute = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_edges_and_large_n():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 8, 3) == 1.0  # n - c = 2 < k
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # n = 200: the product form agrees with exact big-integer binomials
    exact = 1 - math.comb(190, 100) / math.comb(200, 100)
    assert pass_at_k(200, 10, 100) == pytest.approx(exact, rel=1e-12)
    for bad in [(0, 0, 1), (5, 6, 1), (5, 1, 0), (5, 1, 6)]:
        with pytest.raises(TunesmithError, match="pass@k needs"):
            pass_at_k(*bad)


# --- HumanEval known answer


def test_humaneval_example_samples_give_pass_at_1_one_half(shared_data):
    problems = _read_jsonl(shared_data("humaneval/example_problem.jsonl"))
    samples = _read_jsonl(shared_data("humaneval/example_samples.jsonl"))
    report = evaluate(problems, samples, ks=(1, 10), workers=2, timeout_s=3.0)
    assert report["pass@1"] == pytest.approx(0.5)
    assert "pass@10" not in report  # only 6 samples: pass@10 is undefined
    assert (report["n_problems"], report["n_samples"]) == (1, 6)
    results = report["results"]
    assert [r["passed"] for r in results] == [False, False, False, True, True, True]
    assert results[0]["result"].startswith("failed: ")  # the `rm -rf tmp` sample
    assert results[1]["result"] == "timed out"  # sleep(10) against a 3 s limit
    assert "EOFError" in results[2]["result"]  # input() reads /dev/null
    assert all(r["result"] == "passed" for r in results[3:])
    assert set(report["sandbox"]) == (ALL_LAYERS if os.geteuid() == 0 else {"seccomp", "py-socket", "rlimits"})


def test_unknown_task_and_unsampled_problem_are_user_errors(shared_data):
    problems = _read_jsonl(shared_data("humaneval/example_problem.jsonl"))
    with pytest.raises(TunesmithError, match="'nope/1', which is not among the problems"):
        evaluate(problems, [{"task_id": "nope/1", "completion": "    return 1"}])
    extra = dict(problems[0], task_id="test/1")
    with pytest.raises(TunesmithError, match="1 problems have no samples"):
        evaluate(problems + [extra], [{"task_id": "test/0", "completion": "    return 1"}])


def test_exiting_early_is_not_a_pass():
    assert run_sample("import sys\nsys.exit(0)\nassert False\n", timeout_s=5)["result"] == "failed: SystemExit: 0"
    r = run_sample("import os\nos._exit(0)\nassert False\n", timeout_s=5)
    assert r["result"] == "failed: exited before the tests finished"
    assert run_sample("import os\nos._exit(2)\n", timeout_s=5)["result"] == "failed: exit code 2"
    assert run_sample("x = 1\nassert x == 1\n", timeout_s=5)["passed"]  # the same shape that does finish passes


def test_busy_loop_times_out():
    assert run_sample("while True:\n    pass\n", timeout_s=1)["result"] == "timed out"


# --- containment


def test_fork_bomb_is_contained_and_leaves_no_process():
    marker = f"tsbomb-{uuid.uuid4().hex}"
    # re-exec with the marker in argv so the bomb's processes can be found in /proc afterwards
    bomb = ("import os, sys\n"
            f"os.execv(sys.executable, [sys.executable, '-c', 'import os\\nwhile True: os.fork()', {marker!r}])\n")
    r = run_sample(bomb, timeout_s=2)
    assert not r["passed"] and (r["result"] == "timed out" or r["result"].startswith("failed: ")), r
    assert _pids_with(marker) == []


def test_detached_background_process_is_killed_after_the_sample():
    marker = f"tsdaemon-{uuid.uuid4().hex}"
    # the scan itself must see a live marked process, or its empty answer below would prove nothing
    probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        deadline = time.monotonic() + 10  # a just-started process shows an empty cmdline for a moment
        while _pids_with(marker) != [probe.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _pids_with(marker) == [probe.pid]
    finally:
        probe.kill()
        probe.wait()
    program = ("import subprocess, sys, time\n"
               f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}],"
               " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
               "time.sleep(0.3)\n")
    r = run_sample(program, timeout_s=5)
    assert r["passed"], r  # the sample itself is fine; what it left behind is not
    assert _pids_with(marker) == []


def test_file_outside_the_sandbox_survives_deletion_attempts():
    # a world-writable directory: the uid drop alone would not protect it, the read-only mounts must
    outside = Path(tempfile.mkdtemp(prefix="tunesmith-test-outside-"))
    try:
        os.chmod(outside, 0o777)
        precious = outside / "precious.txt"
        precious.write_text("keep me")
        os.chmod(precious, 0o666)
        program = (f"import os, shutil, subprocess\n"
                   f"subprocess.run(['rm', '-rf', {str(outside)!r}])\n"
                   f"try:\n    os.remove({str(precious)!r})\nexcept OSError:\n    pass\n"
                   f"open({str(precious)!r}, 'w').write('overwritten')\n")
        r = run_sample(program, timeout_s=5)
        assert not r["passed"], r
        assert precious.read_text() == "keep me"
    finally:
        for p in outside.iterdir():
            p.unlink()
        outside.rmdir()


def test_socket_to_a_local_server_gets_no_connection():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        connect = f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')"
        program = (f"import _socket, subprocess, sys\n"
                   f"errors = []\n"
                   f"try:\n    {connect}\nexcept OSError as e:\n    errors.append(repr(e))\n"
                   f"try:\n    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
                   f"    s.connect(('127.0.0.1', {port}))\nexcept OSError as e:\n    errors.append(repr(e))\n"
                   f"p = subprocess.run([sys.executable, '-c', {connect!r}], capture_output=True)\n"
                   f"if p.returncode:\n    errors.append('child python failed')\n"
                   f"if len(errors) == 3:\n    raise RuntimeError(errors)\n")  # any way that got through passes
        r = run_sample(program, timeout_s=5)
        assert not r["passed"], r
        assert "RuntimeError" in r["result"], r  # all three routes failed, not a typo in the sample
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_memory_hog_fails():
    r = run_sample("x = bytearray(4 * 1024 ** 3)\nx[-1] = 1\n", timeout_s=5, memory_mb=512)
    assert not r["passed"] and "MemoryError" in r["result"], r


def test_huge_file_is_stopped():
    program = "with open('big.bin', 'wb') as f:\n    for _ in range(1024):\n        f.write(bytes(1 << 20))\n"
    r = run_sample(program, timeout_s=10, file_mb=16)
    assert not r["passed"] and "File too large" in r["result"], r


def test_temporary_directory_is_removed_afterwards():
    program = "import os\nopen('scratch.txt', 'w').write('x' * 1000)\nraise RuntimeError(os.getcwd())\n"
    r = run_sample(program, timeout_s=5)
    assert r["result"].startswith("failed: RuntimeError: "), r
    work = Path(r["result"].removeprefix("failed: RuntimeError: "))
    assert work.name == "work" and work.parent.name.startswith("tunesmith-sandbox-")
    assert not work.exists() and not work.parent.exists()


def test_limits_are_checked():
    with pytest.raises(TunesmithError, match="sandbox limits too small"):
        run_sample("pass", timeout_s=0)


# --- the launcher program, a file shipped in the package


def test_launcher_file_is_the_program_the_sandbox_starts(monkeypatch):
    from tunesmith.eval import code

    assert code.LAUNCHER_FILE.is_file() and code.LAUNCHER_FILE.parent == Path(code.__file__).parent
    started = []
    real_popen = subprocess.Popen

    def spy(args, **kwargs):
        started.append(args)
        return real_popen(args, **kwargs)

    monkeypatch.setattr(code.subprocess, "Popen", spy)
    assert run_sample("assert 1 + 1 == 2\n", timeout_s=5)["passed"]
    assert started[0][1:4] == ["-I", "-B", "-c"]  # isolated interpreter, the program as text, not a path
    assert started[0][4] == code.LAUNCHER_FILE.read_text(encoding="utf-8")


def test_importing_the_launcher_runs_nothing():
    # Were main() to run on import it would read this stdin, fail to parse it and exit non-zero.
    probe = "import tunesmith.eval.sandbox_launcher as m; print(callable(m.main))"
    out = subprocess.run([sys.executable, "-c", probe], input=b"not json", capture_output=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, b"True\n", b"")
