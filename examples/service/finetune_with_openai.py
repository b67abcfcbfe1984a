"""Fine-tune through tunesmith's service with nothing but the official `openai` client.

    tunesmith serve smollm2-135m-instruct --jobs            # terminal 1 (add --api-key KEY beyond localhost)
    python examples/service/finetune_with_openai.py [DATA.jsonl] [--base-url URL] [--api-key KEY]

Uploads the JSONL, creates a job (hyperparameters left to "auto"), follows its events until it
succeeds, lists its checkpoints and asks the fine-tuned model a question. Prints the time each stage
took; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from openai import OpenAI

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(HERE.parent / "quickstart" / "train.jsonl"))
    ap.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--api-key", default="none")
    ap.add_argument("--suffix", default="records")
    ap.add_argument("--question", default="Turn this into a contact record: Lena Park, 34, dentist in Oslo.")
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    t0 = time.perf_counter()
    base = client.models.list().data[0].id
    with open(args.data, "rb") as f:
        upload = client.files.create(file=f, purpose="fine-tune")
    print(f"uploaded {upload.filename}: {upload.id} ({upload.bytes} bytes)")
    job = client.fine_tuning.jobs.create(model=base, training_file=upload.id, suffix=args.suffix)
    print(f"job {job.id}: {job.status}")
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=50).data):
            if event.id not in seen:
                seen.add(event.id)
                print(f"  [{event.level}] {event.message}")
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(2)
    trained = time.perf_counter()
    print(f"job {job.status} in {trained - t0:.0f} s; model {job.fine_tuned_model}; hyperparameters "
          f"{job.hyperparameters.model_dump()}")
    if job.status != "succeeded":
        print(f"error: {job.error}")
        return 1
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    for c in checkpoints:
        print(f"  checkpoint {c.fine_tuned_model_checkpoint} (step {c.step_number}, {c.metrics.model_dump()})")
    reply = client.chat.completions.create(model=job.fine_tuned_model, temperature=0, max_tokens=64,
                                           messages=[{"role": "user", "content": args.question}])
    answered = time.perf_counter()
    print(f"{job.fine_tuned_model}: {reply.choices[0].message.content}")
    print(json.dumps({"job": job.id, "model": job.fine_tuned_model, "rows_file": upload.filename,
                      "seconds_to_succeeded": round(trained - t0, 1), "seconds_total": round(answered - t0, 1),
                      "hyperparameters": job.hyperparameters.model_dump(), "trained_tokens": job.trained_tokens,
                      "checkpoints": len(checkpoints), "reply": reply.choices[0].message.content}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
