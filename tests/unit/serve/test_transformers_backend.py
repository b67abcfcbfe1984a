"""TransformersBackend's continuous batching: a request that arrives while others decode joins the
running batch at the next step, and its greedy (and seeded) output is what it would be alone; a
finished or cancelled row leaves at once. Driven through the backend's own queue (submit/emit),
the same path the HTTP app uses, with no timing: joins are triggered from inside the emit callback
of a running row, so they land mid-batch deterministically."""

from __future__ import annotations

import threading

import pytest

LONG = "Once upon a time in a small village there lived"
PROMPTS = ["Hello", "The weather today is sunny and the birds are singing in every tree of the park",
           "One, two, three,"]


class Collect:
    """One row's events, in order, plus a shared log of (row name, kind) across rows."""

    def __init__(self, name: str, log: list, on_text=None):
        self.name, self.log, self.on_text = name, log, on_text
        self.text, self.done, self.error = "", None, None
        self.pieces = 0
        self.finished = threading.Event()

    def __call__(self, kind: str, value) -> None:
        self.log.append((self.name, kind))
        if kind == "text":
            self.text += value
            self.pieces += 1
            if self.on_text is not None:
                self.on_text(self.pieces)
        elif kind == "done":
            self.done = value
            self.finished.set()
        else:
            self.error = value
            self.finished.set()


def _row(backend, prompt: str, emit, max_tokens: int = 24, **sampling):
    from tunesmith.serve.backends import Row, Sampling

    return Row(backend.prepare(False, prompt), None, Sampling(max_tokens=max_tokens, temperature=sampling.pop(
        "temperature", 0.0), **sampling), emit)


def _alone(backend, prompt: str, **kw) -> tuple[str, tuple]:
    c = Collect("alone", [])
    backend.submit([_row(backend, prompt, c, **kw)])
    assert c.finished.wait(120) and c.error is None, c.error
    return c.text, c.done


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from tunesmith.serve.backends import TransformersBackend

    b = TransformersBackend(str(tiny_model_dir), max_batch=8, batch_window_s=0.0)
    yield b
    b.close()


def _join_mid_batch(backend, asks: list[dict], at: list[int], long_tokens: int = 60):
    """A long greedy row starts alone; ask i is submitted when the long row has sent at[i] pieces."""
    log: list = []
    joiners = [Collect(f"j{i}", log) for i in range(len(asks))]

    def on_text(pieces: int) -> None:
        for i, n in enumerate(at):
            if pieces == n:
                backend.submit([_row(backend, asks[i].get("prompt", PROMPTS[i % 3]), joiners[i],
                                     **{k: v for k, v in asks[i].items() if k != "prompt"})])

    long = Collect("long", log, on_text)
    backend.submit([_row(backend, LONG, long, max_tokens=long_tokens)])
    assert long.finished.wait(120) and long.error is None, long.error
    for j in joiners:
        assert j.finished.wait(120) and j.error is None, j.error
    return long, joiners, log


def test_a_request_joining_mid_batch_decodes_as_it_would_alone(backend):
    asks = [dict(prompt=PROMPTS[0]), dict(prompt=PROMPTS[1]), dict(prompt=PROMPTS[2], max_tokens=5)]
    alone = [_alone(backend, **a) for a in asks]
    long_alone = _alone(backend, LONG, max_tokens=60)
    assert long_alone[1] == ("length", 60)  # the long row really runs its 60 tokens
    batches, max_batch = backend.stats["batches"], backend.stats["max_batch"]
    # Joiners with a shorter and a longer prompt than the running cache (both re-paddings happen);
    # the last two arrive together, so they are prefilled together, left-padded to each other.
    long, joiners, log = _join_mid_batch(backend, asks, at=[3, 10, 10])
    assert [(j.text, j.done) for j in joiners] == alone
    assert (long.text, long.done) == long_alone  # the running row is not disturbed by the joins
    assert backend.stats["batches"] == batches + 3 and backend.stats["max_batch"] >= max(max_batch, 3)
    # Each joiner finished before the long row did: it did not wait for the batch to end.
    assert all(log.index((j.name, "done")) < log.index(("long", "done")) for j in joiners)


def test_seeded_sampling_is_the_same_joined_or_alone(backend):
    asks = [dict(prompt=PROMPTS[1], temperature=1.0, seed=5, top_p=0.9), dict(prompt=PROMPTS[0], temperature=0.7,
                                                                               seed=9)]
    alone = [_alone(backend, **a) for a in asks]
    _, joiners, _ = _join_mid_batch(backend, asks, at=[2, 7])
    assert [(j.text, j.done) for j in joiners] == alone


def test_a_late_request_streams_before_a_long_generation_ends(backend):
    """The first piece of text of a request submitted during a long generation arrives before the
    long generation finishes (before continuous batching it waited for the whole batch)."""
    long, (late,), log = _join_mid_batch(backend, [dict(prompt=PROMPTS[2], max_tokens=4)], at=[2], long_tokens=80)
    assert late.done[1] <= 4 and long.done == ("length", 80)
    first_late = log.index(("j0", "text"))
    assert first_late < log.index(("long", "done"))
    # and the long row kept streaming after the late one had finished: they decoded side by side
    assert ("long", "text") in log[log.index(("j0", "done")):]


def test_a_cancelled_row_leaves_and_the_others_go_on(backend):
    log: list = []
    other = Collect("other", log)
    expected = _alone(backend, PROMPTS[1], max_tokens=30)
    rows = []

    def on_text(pieces: int) -> None:
        if pieces == 3:
            rows[0].cancelled = True  # the client went away

    gone = Collect("gone", log, on_text)
    rows.append(_row(backend, LONG, gone, max_tokens=200))
    backend.submit([rows[0]])
    backend.submit([_row(backend, PROMPTS[1], other, max_tokens=30)])
    assert other.finished.wait(120) and other.error is None
    assert (other.text, other.done) == expected
    assert gone.done is None and gone.pieces <= 4  # dropped at once, no "done" for a gone client
    assert backend._active() == 0


def test_requests_beyond_max_batch_wait_for_room(tiny_model_dir):
    """With max_batch=2, a third request joins only when a running row has left."""
    from tunesmith.serve.backends import TransformersBackend

    b = TransformersBackend(str(tiny_model_dir), max_batch=2, batch_window_s=0.0)
    try:
        log: list = []
        cs = [Collect(f"r{i}", log) for i in range(3)]
        with b.model_lock:  # all three queued before the first step
            for i, c in enumerate(cs):
                b.submit([_row(b, PROMPTS[i], c, max_tokens=(6 if i == 0 else 20))])
        for c in cs:
            assert c.finished.wait(120) and c.error is None
        assert b.stats["max_batch"] == 2
        assert log.index(("r0", "done")) < log.index(("r2", "text"))  # r2 waited for r0's place
    finally:
        b.close()


def test_the_embedded_model_joined_mid_batch_equals_alone(smollm2_dir):
    """One check on the real SmolLM2 (30 layers, GQA): the same equality as on the tiny model."""
    from tunesmith.serve.backends import TransformersBackend

    b = TransformersBackend(str(smollm2_dir), max_batch=4, batch_window_s=0.0)
    try:
        asks = [dict(prompt=PROMPTS[1], max_tokens=12), dict(prompt=PROMPTS[0], max_tokens=12),
                dict(prompt=PROMPTS[2], max_tokens=12)]
        alone = [_alone(b, **a) for a in asks]
        long_alone = _alone(b, LONG, max_tokens=24)
        # The first two arrive together (one left-padded prefill), the third later (a re-padded merge).
        # Only a trained model checks positions: a random tiny one attends almost uniformly.
        long, joiners, _ = _join_mid_batch(b, asks, at=[2, 2, 6], long_tokens=24)
        assert [(j.text, j.done) for j in joiners] == alone
        assert (long.text, long.done) == long_alone
    finally:
        b.close()
