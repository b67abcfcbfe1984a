"""The fine-tuning service end to end with the official `openai` client against `tunesmith serve
--jobs` (a real server process on the tiny model): upload, create a job, follow its events to
succeeded, list checkpoints, chat with the ft: model and a checkpoint's; cancel; pause and resume;
a malformed upload and a bad job; and a kill -9 of the server mid-job, after which a restarted
server finishes the job with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

KEY = "sk-jobs-test"
ROWS = [{"instruction": f"Give the colour word {i % 4}.", "output": ["red", "green", "blue", "cyan"][i % 4]}
        for i in range(48)]


class Server:
    """`tunesmith serve MODEL --jobs` in a process of its own (so that it can be killed with -9)."""

    def __init__(self, model: Path, service: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(service.parent / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "serve", str(model), "--jobs",
                                      "--jobs-dir", str(service), "--port", str(self.port), "--api-key", KEY,
                                      ], stdout=self.log, stderr=self.log)
        self.client = openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=KEY, max_retries=0,
                                    timeout=60)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.client.models.list()
                return
            except openai.APIConnectionError:
                assert self.proc.poll() is None, Path(self.log.name).read_text()[-3000:]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.log.close()


def wait_for(client, job_id: str, statuses: tuple[str, ...], timeout: float = 300) -> object:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job stayed {job.status}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("jobs")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    server = Server(tiny_model_dir, root / "service")
    yield server, root, data
    server.stop()


def _create(client, file_id: str, **kw):
    return client.fine_tuning.jobs.create(model=client.models.list().data[0].id, training_file=file_id, **kw)


def test_upload_train_follow_and_chat(service):
    server, root, data = service
    client = server.client
    with open(data, "rb") as f:
        upload = client.files.create(file=f, purpose="fine-tune")
    job = _create(client, upload.id, suffix="colours", seed=7, metadata={"team": "qa"}, method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 8,
                                                                   "learning_rate_multiplier": "auto"}}})
    assert job.status in ("queued", "running") and job.metadata == {"team": "qa"}
    done = wait_for(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:{job.model}:colours:{job.id.removeprefix('ftjob-')[:12]}"
    assert done.hyperparameters.n_epochs == 2 and done.hyperparameters.batch_size == 8
    assert done.hyperparameters.learning_rate_multiplier == 1.0 and done.trained_tokens > 0
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in events]
    assert messages[0] == "The job has successfully completed"  # newest first
    assert any(e.type == "metrics" and e.data["step"] for e in events)
    assert "Files validated, moving job to queued state" in messages
    first = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(first.data) == 2 and first.has_more
    after = client.fine_tuning.jobs.list_events(job.id, limit=2, after=first.data[-1].id)
    assert after.data[0].id == events[2].id
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].step_number >= checkpoints[-1].step_number
    assert checkpoints[0].fine_tuned_model_checkpoint.startswith(done.fine_tuned_model + ":ckpt-step-")
    for model in (done.fine_tuned_model, checkpoints[-1].fine_tuned_model_checkpoint):
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=4, temperature=0)
        assert reply.model == model and reply.choices[0].message.content is not None
    run = root / "service" / "runs" / job.id
    assert (run / "config.yaml").is_file() and (run / "adapter" / "adapter_config.json").is_file()
    assert job.id in [j.id for j in client.fine_tuning.jobs.list().data]


def test_bad_uploads_and_jobs_are_refused_with_reasons(service, tmp_path):
    server, root, data = service
    client = server.client
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with open(bad, "rb") as f, pytest.raises(openai.BadRequestError, match="bad.jsonl:2:"):
        client.files.create(file=f, purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="invalid training_file"):
        _create(client, "file-doesnotexist")
    upload = client.files.create(file=("t.jsonl", data.read_bytes()), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="cannot be fine-tuned here"):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload.id)
    with pytest.raises(openai.BadRequestError, match="n_epochs"):
        _create(client, upload.id, method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": -1}}})
    with pytest.raises(openai.BadRequestError, match="preference"):
        _create(client, upload.id, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}})
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")


def test_cancel_and_pause_resume(service):
    server, root, data = service
    client = server.client
    upload = client.files.create(file=("t.jsonl", data.read_bytes()), purpose="fine-tune")
    slow = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 40, "batch_size": 4}}}
    job = _create(client, upload.id, method=slow)
    wait_for(client, job.id, ("running",))
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="already cancelled"):
        client.fine_tuning.jobs.cancel(job.id)
    job = _create(client, upload.id, method=slow)
    wait_for(client, job.id, ("running",))
    _wait_checkpoint(client, job.id)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    time.sleep(1.5)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    wait_for(client, job.id, ("running",))
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert any("resumes from its last checkpoint" in m for m in messages)
    client.fine_tuning.jobs.cancel(job.id)


def _wait_checkpoint(client, job_id: str, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while not client.fine_tuning.jobs.checkpoints.list(job_id).data:
        assert time.monotonic() < deadline, "no checkpoint was saved"
        time.sleep(0.5)
    return client.fine_tuning.jobs.checkpoints.list(job_id).data[0].step_number


def test_kill_9_mid_job_then_restart_finishes_it(tmp_path, tiny_model_dir):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    service = tmp_path / "service"
    server = Server(tiny_model_dir, service)
    client = server.client
    upload = client.files.create(file=("t.jsonl", data.read_bytes()), purpose="fine-tune")
    job = _create(client, upload.id, method={"type": "supervised", "supervised": {
        "hyperparameters": {"n_epochs": 6, "batch_size": 4}}})
    wait_for(client, job.id, ("running",))
    _wait_checkpoint(client, job.id)
    worker = client.fine_tuning.jobs.retrieve(job.id)
    events_before = {e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data}
    server.stop(signal.SIGKILL)
    # the worker of a killed server may live on (its own session) or die with the machine: both are
    # covered; here it is killed too, the harder case (the job must resume from its checkpoint)
    pid = json.loads(json.dumps(_job_row(service, job.id)))["pid"]
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server = Server(tiny_model_dir, service)
    try:
        done = wait_for(server.client, job.id, ("succeeded", "failed", "cancelled"))
        assert done.status == "succeeded", done.error
        assert done.id == worker.id and done.fine_tuned_model
        events_after = server.client.fine_tuning.jobs.list_events(job.id, limit=100).data
        assert events_before <= {e.id for e in events_after}  # nothing lost
        assert any("resumes from its last checkpoint" in e.message for e in events_after)
        assert sum(e.message.startswith("Fine-tuning job started") for e in events_after) == 2  # not a third time
        reply = server.client.chat.completions.create(model=done.fine_tuned_model, max_tokens=2,
                                                      messages=[{"role": "user", "content": "Hi"}])
        assert reply.model == done.fine_tuned_model
        assert [j.id for j in server.client.fine_tuning.jobs.list().data] == [job.id]
    finally:
        server.stop()


def _job_row(service: Path, job_id: str) -> dict:
    from tunesmith.serve.job_store import JobStore

    return JobStore(service).get(job_id)


def test_a_dpo_job_trains_with_its_beta(service, tmp_path):
    server, root, data = service
    client = server.client
    pairs = [{"prompt": f"Colour {i}?", "chosen": ["red", "green"][i % 2], "rejected": "I refuse."} for i in range(16)]
    upload = client.files.create(file=("pairs.jsonl", "".join(json.dumps(r) + "\n" for r in pairs).encode()),
                                 purpose="fine-tune")
    job = _create(client, upload.id, method={"type": "dpo", "dpo": {"hyperparameters": {
        "beta": 0.2, "n_epochs": 1, "batch_size": 4}}})
    done = wait_for(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.method.type == "dpo" and done.hyperparameters.beta == 0.2 and done.hyperparameters.n_epochs == 1
    config = (root / "service" / "runs" / job.id / "config.yaml").read_text()
    assert "recipe: dpo" in config and "beta: 0.2" in config
