"""The jobs database: filtered job lists in one query, and event polling by sequence number."""

from __future__ import annotations


def test_jobs_filter_on_status_and_loaded(tmp_path):
    from tunesmith.serve.job_store import JobStore

    store = JobStore(tmp_path)
    a, b, c = (store.create(status=s, model="m") for s in ("succeeded", "succeeded", "running"))
    store.update(a["id"], loaded=1)
    assert [j["id"] for j in store.jobs(("succeeded",))] == [a["id"], b["id"]]
    assert [j["id"] for j in store.jobs(("succeeded",), loaded=False)] == [b["id"]]
    assert [j["id"] for j in store.jobs(loaded=True)] == [a["id"]]
    assert {j["id"] for j in store.jobs()} == {a["id"], b["id"], c["id"]}
    assert store.jobs(("running",))[0] == store.get(c["id"])


def test_events_after_a_sequence_number_are_the_newer_ones_oldest_first(tmp_path):
    from tunesmith.serve.job_store import JobStore

    store = JobStore(tmp_path)
    job, other = store.create(status="running"), store.create(status="running")
    for i in range(3):
        store.event(job["id"], f"step {i}")
        store.event(other["id"], f"other {i}")
    assert [e["message"] for e in store.events(job["id"])] == ["step 2", "step 1", "step 0"]  # OpenAI's order
    first = store.events(job["id"], after=0)
    assert [e["message"] for e in first] == ["step 0", "step 1", "step 2"]
    newer = store.events(job["id"], after=first[0]["seq"])
    assert [e["message"] for e in newer] == ["step 1", "step 2"]
    assert store.events(job["id"], after=first[-1]["seq"]) == []
    assert "seq" not in store.events(job["id"])[0]
