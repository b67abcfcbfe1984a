"""`/v1/files`: OpenAI's files API for fine-tuning data, on the server started with `--jobs`.

Uploads are checked with the project's own validator (tunesmith/data/validate.py) before they are
kept: a bad file is refused with every problem as `filename:line: problem` in the error message, so
`openai.BadRequestError` shows the user what to fix. Kept files live under the service folder as
`files/<id><suffix>`; their records are rows of the service's SQLite database (service.db), so a
restarted server still has them.

Nothing the client sends becomes a path: the stored name is the generated id, and the client's
filename is kept only as a display name (its last path component, cut to 255 characters). Sizes are
bounded by the server's --max-file-bytes (checked before the body is read, see app._Guard), the
count by MAX_FILES.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

from starlette.requests import Request  # FastAPI reads the handlers' annotations by name

from tunesmith.serve.schema import APIError

PURPOSES = ("fine-tune",)
SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
MAX_FILES = 1000
MAX_LISTED_PROBLEMS = 20


class FileStore:
    """Files kept for fine-tuning: records in SQLite, bytes on disk; safe to share across threads."""

    def __init__(self, root: str | Path, max_files: int = MAX_FILES):
        self.root = Path(root)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self.lock = threading.Lock()
        # one connection, serialised by the lock: the store is small and writes are rare
        self.db = sqlite3.connect(self.root / "service.db", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")  # a kill -9 mid-write leaves the last commit intact
        self.db.execute("CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, filename TEXT, bytes INTEGER, "
                        "created_at INTEGER, purpose TEXT, path TEXT, rows INTEGER)")

    def add(self, filename: str, data: bytes, purpose: str) -> dict:
        if purpose not in PURPOSES:
            raise APIError(400, f"purpose {purpose!r} is not supported here; use 'fine-tune'", param="purpose",
                           code="invalid_value")
        name = display_name(filename)
        suffix = Path(name).suffix.lower() or ".jsonl"
        if suffix not in SUFFIXES:
            raise APIError(400, f"{name}: {suffix} files are not training data; upload {', '.join(SUFFIXES)}",
                           param="file", code="invalid_file")
        if not data.strip():
            raise APIError(400, f"{name} is empty", param="file", code="invalid_file")
        with self.lock:
            (count,) = self.db.execute("SELECT COUNT(*) FROM files").fetchone()
        if count >= self.max_files:
            raise APIError(400, f"this server keeps at most {self.max_files} files; delete some first",
                           param="file", code="too_many_files")
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        path = self.root / "files" / f"{file_id}{suffix}"
        tmp = path.with_name(f".part-{path.name}")  # the validator reads the format from the suffix
        tmp.write_bytes(data)
        try:
            rows = _validate(tmp, name, suffix)
        except APIError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.rename(path)  # only a validated file ever has its real name
        record = {"id": file_id, "filename": name, "bytes": len(data), "created_at": int(time.time()),
                  "purpose": purpose, "path": str(path), "rows": rows}
        with self.lock:
            self.db.execute("INSERT INTO files VALUES (:id, :filename, :bytes, :created_at, :purpose, :path, :rows)",
                            record)
        return record

    def get(self, file_id: str) -> dict | None:
        with self.lock:
            row = self.db.execute("SELECT id, filename, bytes, created_at, purpose, path, rows FROM files "
                                  "WHERE id = ?", (file_id,)).fetchone()
        return dict(zip(("id", "filename", "bytes", "created_at", "purpose", "path", "rows"), row)) if row else None

    def require(self, file_id: str) -> dict:
        record = self.get(file_id)
        if record is None:
            raise APIError(404, f"No such File object: {file_id[:64]}", param="file_id", code="file_not_found")
        return record

    def list(self, purpose: str | None = None, limit: int = 10000, after: str | None = None,
             order: str = "desc") -> list[dict]:
        where, args = [], []
        if purpose:
            where.append("purpose = ?")
            args.append(purpose)
        if after:
            anchor = self.require(after)
            where.append("(created_at, id) < (?, ?)" if order == "desc" else "(created_at, id) > (?, ?)")
            args += [anchor["created_at"], anchor["id"]]
        direction = "DESC" if order == "desc" else "ASC"  # one of two literals, never the client's text
        sql = ("SELECT id FROM files" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY created_at {direction}, id {direction} LIMIT ?")
        with self.lock:
            ids = [r[0] for r in self.db.execute(sql, (*args, max(1, min(limit, 10000))))]
        return [self.get(i) for i in ids]

    def delete(self, file_id: str) -> None:
        record = self.require(file_id)
        with self.lock:
            self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        Path(record["path"]).unlink(missing_ok=True)


def display_name(filename: str | None) -> str:
    """The client's filename as a label only: its last component, no control characters, bounded."""
    name = (filename or "upload.jsonl").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip() or "upload.jsonl"
    return name[:255]


def _validate(path: Path, name: str, suffix: str) -> int:
    """Rows the project's validator accepts; every error refused with the client's filename:line."""
    from tunesmith.data.validate import FileSpec, check_files

    result = check_files([FileSpec(str(path))])
    if result.ok:
        return result.report.kept
    errors = result.errors
    shown = [f"{name}:{p.line}: {p.problem}" + (f" ({p.fix})" if p.fix else "") if p.line else
             f"{name}: {p.problem}" for p in errors[:MAX_LISTED_PROBLEMS]]
    more = f"\n... and {len(errors) - MAX_LISTED_PROBLEMS} more" if len(errors) > MAX_LISTED_PROBLEMS else ""
    raise APIError(400, f"{name} is not valid training data ({len(errors)} problem{'s' * (len(errors) != 1)}):\n"
                   + "\n".join(shown) + more, param="file", code="invalid_file")


def public(record: dict) -> dict:
    """A file record as OpenAI's File object (the server path is never shown)."""
    return {"id": record["id"], "object": "file", "bytes": record["bytes"], "created_at": record["created_at"],
            "filename": record["filename"], "purpose": record["purpose"], "status": "processed",
            "status_details": None, "expires_at": None}


def add_routes(app, store: FileStore, max_file_bytes: int) -> None:
    from fastapi.responses import FileResponse
    from starlette.concurrency import run_in_threadpool

    @app.post("/v1/files")
    async def upload(request: Request):
        try:
            form = await request.form(max_files=1, max_fields=8, max_part_size=max_file_bytes)
        except Exception as e:  # noqa: BLE001 - a malformed multipart body, whatever the parser raised
            raise APIError(400, f"expected a multipart form with `file` and `purpose`: {e}", param="file") from None
        upload = form.get("file")
        purpose = form.get("purpose")
        if upload is None or isinstance(upload, str):
            raise APIError(400, "no `file` part in the form", param="file", code="missing_file")
        if not isinstance(purpose, str):
            raise APIError(400, "no `purpose` in the form; use 'fine-tune'", param="purpose")
        data = await upload.read()
        record = await run_in_threadpool(store.add, upload.filename, data, purpose)
        return public(record)

    @app.get("/v1/files")
    async def list_files(purpose: str | None = None, limit: int = 10000, after: str | None = None,
                         order: str = "desc"):
        if order not in ("asc", "desc"):
            raise APIError(400, f"order must be asc or desc, not {order[:20]!r}", param="order")
        records = await run_in_threadpool(store.list, purpose, limit + 1, after, order)
        page = records[:limit]
        return {"object": "list", "data": [public(r) for r in page], "has_more": len(records) > limit,
                "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    @app.get("/v1/files/{file_id}")
    async def retrieve(file_id: str):
        return public(store.require(file_id))

    @app.get("/v1/files/{file_id}/content")
    async def content(file_id: str):
        record = store.require(file_id)
        return FileResponse(record["path"], media_type="application/octet-stream", filename=record["filename"])

    @app.delete("/v1/files/{file_id}")
    async def delete(file_id: str):
        await run_in_threadpool(store.delete, file_id)
        return {"id": file_id, "object": "file", "deleted": True}
