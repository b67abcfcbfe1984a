"""The fine-tuning service's state in SQLite (service.db, beside the files table): jobs, their
events and their checkpoints. The server and each job's worker process open it side by side; WAL
mode lets one write while the other reads, and a kill -9 of either loses no committed row."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

STATUSES = ("validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
JSON_COLUMNS = ("hyperparameters", "method", "metadata", "error", "overrides")
JOB_COLUMNS = ("id", "created_at", "model", "training_file", "validation_file", "suffix", "seed", "metadata",
               "method", "hyperparameters", "status", "error", "fine_tuned_model", "finished_at", "trained_tokens",
               "run_dir", "pid", "attempts", "loaded", "base", "overrides")


class JobStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.root / "service.db", check_same_thread=False, isolation_level=None,
                                  timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"CREATE TABLE IF NOT EXISTS jobs ({', '.join(JOB_COLUMNS)}, PRIMARY KEY (id))")
        self.db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, "
                        "job_id TEXT, created_at INTEGER, level TEXT, message TEXT, data TEXT, type TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, "
                        "job_id TEXT, created_at INTEGER, step INTEGER, metrics TEXT, model TEXT, path TEXT)")

    # ------------------------------------------------------------------ jobs

    def create(self, **fields) -> dict:
        job = {c: None for c in JOB_COLUMNS} | fields
        job.update(id=f"ftjob-{uuid.uuid4().hex[:24]}", created_at=int(time.time()), attempts=0, loaded=0)
        with self.lock:
            self.db.execute(f"INSERT INTO jobs VALUES ({', '.join('?' * len(JOB_COLUMNS))})",
                            [_dump(c, job[c]) for c in JOB_COLUMNS])
        return self.get(job["id"])

    def get(self, job_id: str) -> dict | None:
        with self.lock:
            row = self.db.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return {c: _load(c, v) for c, v in zip(JOB_COLUMNS, row)} if row else None

    def update(self, job_id: str, **fields) -> None:
        if not fields:
            return
        with self.lock:
            self.db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                            [*(_dump(k, v) for k, v in fields.items()), job_id])

    def set_status(self, job_id: str, new: str, only_from: tuple[str, ...], **fields) -> bool:
        """Move a job to `new` only from one of `only_from` (one statement: a worker finishing and a
        user cancelling cannot both win)."""
        sets = {"status": new, **fields}
        with self.lock:
            cur = self.db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ? AND status IN "
                                  f"({', '.join('?' * len(only_from))})",
                                  [*(_dump(k, v) for k, v in sets.items()), job_id, *only_from])
        return cur.rowcount == 1

    def jobs(self, status: tuple[str, ...] | None = None, *, loaded: bool | None = None) -> list[dict]:
        """Jobs in one query, oldest first; `status`: only these; `loaded`: only (not) yet hot-loaded."""
        where, args = [], []
        if status:
            where.append(f"status IN ({', '.join('?' * len(status))})")
            args += list(status)
        if loaded is not None:
            where.append("loaded = ?")
            args.append(int(loaded))
        sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self.lock:
            rows = self.db.execute(sql + " ORDER BY created_at, rowid", args).fetchall()  # creation order
        return [{c: _load(c, v) for c, v in zip(JOB_COLUMNS, row)} for row in rows]

    # ------------------------------------------------------------------ events and checkpoints

    def event(self, job_id: str, message: str, level: str = "info", data: dict | None = None,
              type: str = "message") -> None:
        with self.lock:
            self.db.execute("INSERT INTO events (id, job_id, created_at, level, message, data, type) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?)", (f"ftevent-{uuid.uuid4().hex[:24]}", job_id, int(time.time()),
                                                    level, message, json.dumps(data) if data else None, type))

    def events(self, job_id: str, after: int | None = None) -> list[dict]:
        """Newest first, as OpenAI lists them; `after`: only events written after that sequence number,
        oldest first, each with its `seq` (what a stream polls with)."""
        sql, args = "SELECT id, created_at, level, message, data, type, seq FROM events WHERE job_id = ?", [job_id]
        if after is not None:
            sql, args = sql + " AND seq > ? ORDER BY seq", args + [after]
        with self.lock:
            rows = self.db.execute(sql if after is not None else sql + " ORDER BY seq DESC", args).fetchall()
        return [{"object": "fine_tuning.job.event", "id": r[0], "created_at": r[1], "level": r[2], "message": r[3],
                 "data": json.loads(r[4]) if r[4] else None, "type": r[5]}
                | ({"seq": r[6]} if after is not None else {}) for r in rows]

    def checkpoint(self, job_id: str, step: int, metrics: dict, model: str, path: str) -> None:
        with self.lock:
            self.db.execute("INSERT INTO checkpoints (id, job_id, created_at, step, metrics, model, path) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?)", (f"ftckpt-{uuid.uuid4().hex[:24]}", job_id, int(time.time()),
                                                    step, json.dumps(metrics), model, path))

    def checkpoints(self, job_id: str | None = None, model: str | None = None) -> list[dict]:
        """Newest first; only those whose folder still exists (training keeps the last few)."""
        where, args = ("job_id = ?", [job_id]) if job_id else ("model = ?", [model])
        with self.lock:
            rows = self.db.execute(f"SELECT id, job_id, created_at, step, metrics, model, path FROM checkpoints "
                                   f"WHERE {where} ORDER BY step DESC", args).fetchall()
        return [{"object": "fine_tuning.job.checkpoint", "id": r[0], "fine_tuning_job_id": r[1], "created_at": r[2],
                 "step_number": r[3], "metrics": json.loads(r[4]), "fine_tuned_model_checkpoint": r[5], "path": r[6]}
                for r in rows if Path(r[6]).is_dir()]


def _dump(column: str, value):
    return json.dumps(value) if column in JSON_COLUMNS and value is not None else value


def _load(column: str, value):
    return json.loads(value) if column in JSON_COLUMNS and value is not None else value


def page(items: list[dict], after: str | None, limit: int) -> dict:
    """OpenAI's cursor page: the items after the one with id `after`, at most `limit`."""
    limit = max(1, min(int(limit), 100))
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}
