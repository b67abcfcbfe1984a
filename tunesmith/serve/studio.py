"""`/studio`: the browser studio of the fine-tuning service (`tunesmith serve --jobs`).

One static page (static/studio.html, plain HTML and JavaScript, nothing fetched from a CDN) over the
service's own API: upload and validate data (/v1/files, problems listed with their lines), a run form
generated from the typed config (every field's help, default and choices; problems shown inline; the
YAML previewed and downloadable), launch as a fine-tuning job, a live view (loss curve, tokens/s, ETA
and the log, streamed), the run's result and report, and a chat with the fine-tuned model.

The page's calls go under /v1/studio/, so the server's API key guards them like every /v1/ route; the
page itself holds no secret. The form may set only the keys in EDITABLE: no path, model, launcher or
tracking URI comes from a browser.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.requests import Request  # FastAPI reads the handlers' annotations by name

from tunesmith.serve.run_form import validate

PAGE = Path(__file__).parent / "static" / "studio.html"
def add_routes(app, store, runner) -> None:
    from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse

    from tunesmith.serve.jobs import require
    from tunesmith.serve.run_form import schema
    from tunesmith.serve.schema import read_json

    @app.get("/studio", include_in_schema=False)
    async def page():
        return FileResponse(PAGE) if PAGE.is_file() else HTMLResponse("studio page missing", status_code=500)

    @app.get("/v1/studio/schema")
    async def config_schema():
        return {"base_model": runner.backend.base_id, "fields": schema()}

    @app.post("/v1/studio/check")
    async def check(request: Request):
        from pydantic import BaseModel

        class Body(BaseModel):
            overrides: dict = {}

        body = await read_json(request, Body)
        return validate(body.overrides, runner.backend.base_id)  # the model id: no server path in the preview

    @app.get("/v1/studio/jobs/{job_id}/stream")
    async def stream(job_id: str):
        require(store, job_id)

        async def events():
            seq = 0  # the last event sent: each poll reads only the newer ones
            for _ in range(3600 * 4):  # bounded: at most an hour of polling per connection
                job = store.get(job_id)
                for e in store.events(job_id, after=seq):
                    seq = e.pop("seq")
                    yield f"data: {json.dumps({'event': e})}\n\n"
                yield f"data: {json.dumps({'status': job['status'], 'model': job['fine_tuned_model']})}\n\n"
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return
                await asyncio.sleep(1)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/studio/jobs/{job_id}/result")
    async def result(job_id: str):
        from tunesmith.runs import read_manifest

        job = require(store, job_id)
        run_dir = Path(job["run_dir"]) if job.get("run_dir") else None
        manifest = (read_manifest(run_dir) or {}) if run_dir else {}
        has_report = bool(run_dir and (run_dir / "report.html").is_file())
        return {"status": job["status"], "model": job["fine_tuned_model"], "result": manifest.get("result"),
                "hyperparameters": job["hyperparameters"], "report": has_report}

    @app.get("/v1/studio/jobs/{job_id}/report")
    async def report(job_id: str):
        job = require(store, job_id)  # the path comes from the job record, never from the request
        path = Path(job["run_dir"] or "") / "report.html"
        if not job.get("run_dir") or not path.is_file():
            from tunesmith.serve.schema import APIError

            raise APIError(404, "this job's run has no report (it had no evaluation)", code="not_found")
        return FileResponse(path, media_type="text/html")
