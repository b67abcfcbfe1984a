"""`/v1/fine_tuning/jobs`: OpenAI's fine-tuning jobs API on the server started with `--jobs`.

A job moves validating_files -> queued -> running -> succeeded | failed | cancelled (and paused
while paused), as OpenAI's do. The runner (a thread of the server) starts queued jobs one at a time
(max_running), each in a worker process of its own (job_worker.py); it watches the workers, hot-loads
each finished job's adapter so that its `ft:` model id answers /v1/chat/completions at once, and
loads a checkpoint's adapter the first time its model id is asked for.

State survives the server: jobs, events and checkpoints are SQLite rows, runs are folders. After a
restart (even a kill -9), a job still marked running whose worker lives on is watched again; one
whose worker died with it is queued again and resumes from its last checkpoint (after MAX_ATTEMPTS
tries it fails with the reason). A job never disappears and never runs twice at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request  # FastAPI reads the handlers' annotations by name

from tunesmith.serve.job_store import TERMINAL, JobStore, page
from tunesmith.serve.schema import APIError

MAX_ATTEMPTS = 3
METHODS = ("supervised", "dpo")
HYPERPARAMETERS = {"supervised": ("n_epochs", "batch_size", "learning_rate_multiplier"),
                   "dpo": ("n_epochs", "batch_size", "learning_rate_multiplier", "beta")}
KINDS = {"supervised": ("chat",), "dpo": ("preference",)}


class Runner:
    """Starts queued jobs in worker processes, watches them, serves what they made."""

    def __init__(self, store: JobStore, files, backend, root: Path, base_spec: str, max_running: int = 1,
                 poll_s: float = 0.5):
        """`base_spec`: the served base model as training loads it (embedded name or folder)."""
        self.store, self.files, self.backend, self.root = store, files, backend, Path(root)
        self.base_spec = base_spec
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        self.max_running, self.poll_s = max_running, poll_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.load_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="tunesmith-jobs")

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop_event.set()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the runner must outlive one bad tick
                print(f"tunesmith jobs: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            self.stop_event.wait(self.poll_s)

    def tick(self) -> None:
        for job in self.store.jobs(("running",)):
            if not self._alive(job):
                self._worker_gone(job)
        for job in self.store.jobs(("succeeded",), loaded=False):  # ticks every 0.5 s: only the new ones
            self._load(job["fine_tuned_model"], job["run_dir"])
            self.store.update(job["id"], loaded=1)
        running = len(self.store.jobs(("running",)))
        for job in self.store.jobs(("queued",))[: max(0, self.max_running - running)]:
            self._spawn(job)

    def _alive(self, job: dict) -> bool:
        proc = self.procs.get(job["id"])
        if proc is not None:
            return proc.poll() is None
        pid = job.get("pid")  # a worker started before this server (re)started
        if not pid:
            return False
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
        except (OSError, PermissionError):
            return False
        return job["id"].encode() in cmdline or not Path("/proc").exists()

    def _worker_gone(self, job: dict) -> None:
        """A worker ended without recording an outcome (killed, or its server died): queue it again to
        resume from its last checkpoint, or fail it after MAX_ATTEMPTS."""
        self.procs.pop(job["id"], None)
        fresh = self.store.get(job["id"])
        if fresh["status"] != "running":  # the worker recorded its outcome
            return
        if fresh["attempts"] >= MAX_ATTEMPTS:
            self.store.set_status(job["id"], "failed", ("running",), finished_at=int(time.time()), error={
                "code": "worker_died", "message": f"the training process ended without a result {MAX_ATTEMPTS} "
                "times (out of memory, or killed); its run folder keeps the checkpoints", "param": None})
            self.store.event(job["id"], "Fine-tuning job failed: the worker died repeatedly", level="error")
        elif self.store.set_status(job["id"], "queued", ("running",), pid=None):
            self.store.event(job["id"], "The training process stopped without a result; the job resumes from its "
                             "last checkpoint", level="warn")

    def _spawn(self, job: dict) -> None:
        if not self.store.set_status(job["id"], "running", ("queued",), attempts=(job["attempts"] or 0) + 1):
            return
        log = open(self.root / "runs" / f"{job['id']}.log", "ab")  # the worker's own output, for debugging
        # its own session: a Ctrl-C to the server does not kill a training halfway through a step
        proc = subprocess.Popen([sys.executable, "-m", "tunesmith.serve.job_worker", str(self.root), job["id"]],
                                stdout=log, stderr=log, start_new_session=True)
        log.close()  # the child holds its own descriptor
        self.procs[job["id"]] = proc
        self.store.update(job["id"], pid=proc.pid)

    def stop_worker(self, job: dict) -> None:
        proc = self.procs.pop(job["id"], None)
        pid = proc.pid if proc else job.get("pid")
        if pid and (proc is not None or self._alive(job)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _load(self, model_id: str, path: str) -> None:
        with self.load_lock:  # the runner thread and a request may both reach for the same adapter
            if model_id not in self.backend.model_ids():
                self.backend.load_adapter(model_id, path, trusted=True)

    def resolve_model(self, model_id: str) -> None:
        """Load a job's (or a checkpoint's) adapter the first time its model id is asked for."""
        if not model_id.startswith("ft:") or model_id in self.backend.model_ids():
            return
        for job in self.store.jobs(("succeeded",)):  # finished a moment ago: the runner loads it next tick
            if job["fine_tuned_model"] == model_id:
                self._load(model_id, job["run_dir"])
                self.store.update(job["id"], loaded=1)
                return
        for ckpt in self.store.checkpoints(model=model_id)[:1]:
            self._load(model_id, ckpt["path"])


def public(job: dict) -> dict:
    """A job as OpenAI's FineTuningJob object."""
    method = job.get("method") or {"type": "supervised"}
    return {"object": "fine_tuning.job", "id": job["id"], "created_at": job["created_at"], "model": job["model"],
            "training_file": job["training_file"], "validation_file": job["validation_file"],
            "status": job["status"], "error": job["error"], "fine_tuned_model": job["fine_tuned_model"],
            "finished_at": job["finished_at"], "hyperparameters": job["hyperparameters"] or {},
            "method": method, "metadata": job["metadata"], "seed": job["seed"], "suffix": job["suffix"],
            "organization_id": "tunesmith", "result_files": [], "trained_tokens": job["trained_tokens"],
            "integrations": None, "estimated_finish": None}


def _method(body: dict) -> dict:
    """The request's method, with its hyperparameters checked ("auto" or a positive number)."""
    method = body.get("method") or {"type": "supervised", "supervised": {
        "hyperparameters": body.get("hyperparameters") or {}}}
    kind = method.get("type")
    if kind not in METHODS:
        raise APIError(400, f"method.type {str(kind)[:40]!r} is not supported; use supervised or dpo",
                       param="method.type", code="invalid_value")
    hp = (method.get(kind) or {}).get("hyperparameters") or {}
    for key, value in hp.items():
        if key not in HYPERPARAMETERS[kind]:
            raise APIError(400, f"unknown hyperparameter {key[:40]!r} for {kind}; use "
                           f"{', '.join(HYPERPARAMETERS[kind])}", param=f"method.{kind}.hyperparameters")
        if value != "auto" and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0
                                or (key in ("n_epochs", "batch_size") and (not float(value).is_integer()
                                                                           or value > 1000))):
            whole = " (a whole one, at most 1000)" if key in ("n_epochs", "batch_size") else ""
            raise APIError(400, f"{key} must be 'auto' or a positive number{whole}, not {str(value)[:40]}",
                           param=f"method.{kind}.hyperparameters.{key}", code="invalid_value")
    return {"type": kind, kind: {"hyperparameters": hp}}


class JobRequest(BaseModel):
    """The body's shape only; values are checked in the handler, with OpenAI's error params."""

    model_config = ConfigDict(extra="allow")
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: object = None
    seed: object = None
    metadata: object = None
    method: dict | None = None
    hyperparameters: dict | None = None


def require(store: JobStore, job_id: str) -> dict:
    job = store.get(job_id)
    if job is None:
        raise APIError(404, f"No such fine-tuning job: {job_id[:64]}", param="fine_tuning_job_id", code="not_found")
    return job


def _check_files(store: JobStore, files, body: dict, kind: str) -> None:
    """Each named file exists, is for fine-tuning, and holds the rows the method trains on."""
    from tunesmith.data.load import load_examples

    for param in ("training_file", "validation_file"):
        file_id = body.get(param)
        if file_id is None and param == "validation_file":
            continue
        if not isinstance(file_id, str):
            raise APIError(400, f"{param} must be a file id (upload with POST /v1/files)", param=param)
        record = files.get(file_id)
        if record is None:
            raise APIError(400, f"invalid {param}: no file {file_id[:64]}", param=param, code="invalid_file_id")
        rows = load_examples([record["path"]], "auto", None, on_error="skip")
        wrong = [e for e in rows if e.kind not in KINDS[kind]]
        if not rows or wrong:
            seen = wrong[0].kind if wrong else "no"
            raise APIError(400, f"{param} {file_id}: {kind} training needs {' / '.join(KINDS[kind])} rows, and "
                           f"{record['filename']} holds {seen} rows"
                           + (f" (line {wrong[0].line})" if wrong else ""), param=param, code="invalid_file")


def add_routes(app, store: JobStore, files, runner: Runner, base_id: str) -> None:
    import re

    from starlette.concurrency import run_in_threadpool

    from tunesmith.serve.schema import read_json

    @app.post("/v1/fine_tuning/jobs")
    async def create(request: Request):
        body = (await read_json(request, JobRequest)).model_dump()
        model = body.get("model")
        if model != base_id:
            raise APIError(400, f"model {str(model)[:80]!r} cannot be fine-tuned here; this server fine-tunes "
                           f"{base_id}", param="model", code="model_not_available")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", suffix)):
            raise APIError(400, "suffix: 1-64 letters, digits, '-' or '_'", param="suffix", code="invalid_value")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31):
            raise APIError(400, "seed must be a whole number from 0 to 2^31-1", param="seed", code="invalid_value")
        metadata = body.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16 or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                for k, v in metadata.items())):
            raise APIError(400, "metadata: at most 16 string pairs (keys up to 64, values up to 512 characters)",
                           param="metadata", code="invalid_value")
        method = _method(body)
        overrides = body.get("tunesmith_overrides")  # the studio's run form: editable keys only
        if overrides is not None:
            from tunesmith.serve.run_form import check_overrides, validate

            check_overrides(overrides)
            checked = await run_in_threadpool(validate, overrides, runner.backend.base_id)
            if not checked["ok"]:
                first = checked["problems"][0]
                raise APIError(400, f"{first['field']}: {first['problem']} ({first['fix']})",
                               param=f"tunesmith_overrides.{first['field']}", code="invalid_value")
        job = store.create(model=model, base=runner.base_spec, training_file=body.get("training_file"),
                           suffix=suffix, seed=seed, validation_file=body.get("validation_file"),
                           metadata=metadata, method=method, overrides=overrides,
                           hyperparameters=method[method["type"]]["hyperparameters"], status="validating_files")
        store.event(job["id"], f"Validating training file: {body.get('training_file')}")
        try:
            await run_in_threadpool(_check_files, store, files, body, method["type"])
        except APIError as e:
            store.set_status(job["id"], "failed", ("validating_files",), finished_at=int(time.time()),
                             error={"code": e.code or "invalid_file", "message": e.message, "param": e.param})
            store.event(job["id"], f"Fine-tuning job failed: {e.message}", level="error")
            raise
        store.set_status(job["id"], "queued", ("validating_files",))
        store.event(job["id"], "Files validated, moving job to queued state")
        return public(store.get(job["id"]))

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(after: str | None = None, limit: int = 20):
        jobs = [public(j) for j in reversed(store.jobs())]  # newest first
        return page(jobs, after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def retrieve(job_id: str):
        return public(require(store, job_id))

    _add_control_routes(app, store, runner)


def _add_control_routes(app, store: JobStore, runner: Runner) -> None:
    """cancel, pause, resume, events, checkpoints."""
    from starlette.concurrency import run_in_threadpool

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        job = require(store, job_id)
        if job["status"] in TERMINAL:
            raise APIError(400, f"job {job_id} is already {job['status']}", param="fine_tuning_job_id",
                           code="invalid_state")
        if store.set_status(job_id, "cancelled", ("validating_files", "queued", "running", "paused"),
                            finished_at=int(time.time())):
            await run_in_threadpool(runner.stop_worker, job)
            store.event(job_id, "Fine-tuning job cancelled")
        return public(require(store, job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/pause")
    async def pause(job_id: str):
        job = require(store, job_id)
        if not store.set_status(job_id, "paused", ("queued", "running")):
            raise APIError(400, f"job {job_id} is {job['status']}: only a queued or running job pauses",
                           param="fine_tuning_job_id", code="invalid_state")
        await run_in_threadpool(runner.stop_worker, job)
        store.event(job_id, "Fine-tuning job paused; it resumes from its last checkpoint")
        return public(require(store, job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/resume")
    async def resume(job_id: str):
        job = require(store, job_id)
        if not store.set_status(job_id, "queued", ("paused",), pid=None):
            raise APIError(400, f"job {job_id} is {job['status']}: only a paused job resumes",
                           param="fine_tuning_job_id", code="invalid_state")
        store.event(job_id, "Fine-tuning job resumed")
        return public(require(store, job_id))

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def events(job_id: str, after: str | None = None, limit: int = 20):
        require(store, job_id)
        return page(store.events(job_id), after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def checkpoints(job_id: str, after: str | None = None, limit: int = 10):
        require(store, job_id)
        items = [{k: v for k, v in c.items() if k != "path"} for c in store.checkpoints(job_id)]
        result = page(items, after, limit)
        result["first_id"] = result["data"][0]["id"] if result["data"] else None
        result["last_id"] = result["data"][-1]["id"] if result["data"] else None
        return result
