"""Log-likelihood and perplexity scoring against direct, one-sequence-at-a-time computations."""

import math

import pytest
import torch

from tunesmith.eval import scoring


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tok


def _direct(model, tok, context: str, continuation: str) -> float:
    """One unpadded forward over context + continuation; sum the continuation's log-probs."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([whole])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    return sum(float(logp[t - 1, whole[t]]) for t in range(len(ctx), len(whole)))


def test_loglikelihoods_equal_unbatched_forward(tiny):
    model, tok = tiny
    pairs = [("The cat sat on the", " mat"), ("The cat sat on the", " sofa by the window"),
             ("Question: 2+2?\nAnswer:", " A"), ("Question: 2+2?\nAnswer:", " B"),
             ("A much longer context that pads the batch with many more tokens than the others ", "end."),
             ("Trailing space moves ", "onto the continuation")]
    got = scoring.loglikelihoods(model, tok, pairs, batch_size=3)
    want = [_direct(model, tok, c, x) for c, x in pairs]
    assert got == pytest.approx(want, abs=2e-4)
    assert all(g < 0 for g in got)
    # A longer continuation of the same context costs more probability mass.
    assert got[1] < got[0] or len(tok(" sofa by the window")["input_ids"]) == 1


def test_single_token_options_share_one_forward(tiny, monkeypatch):
    model, tok = tiny
    calls = []
    orig = model.forward

    def counting(*a, **k):
        calls.append(k["input_ids"].shape[0])
        return orig(*a, **k)

    monkeypatch.setattr(model, "forward", counting)
    pairs = [("Pick one:", f" {c}") for c in "ABCD"]
    lls = scoring.loglikelihoods(model, tok, pairs, batch_size=16)
    assert sum(calls) == 1  # four options, one row through the model
    assert len(set(round(x, 5) for x in lls)) == 4


def test_context_is_cut_from_the_left_never_the_continuation(tiny):
    model, tok = tiny
    long_ctx = "word " * 300
    got = scoring.loglikelihoods(model, tok, [(long_ctx, "tail end")], max_length=64)
    ids = tok(long_ctx.rstrip() + " tail end", add_special_tokens=False)["input_ids"][-65:]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0], -1)
    n = len(tok(long_ctx.rstrip() + " tail end", add_special_tokens=False)["input_ids"]) - len(
        tok(long_ctx.rstrip(), add_special_tokens=False)["input_ids"])
    want = sum(float(logp[len(ids) - 2 - k, ids[len(ids) - 1 - k]]) for k in range(n))
    assert got[0] == pytest.approx(want, abs=2e-4)


def test_perplexity_matches_direct_cross_entropy(tiny):
    model, tok = tiny
    texts = ["It was the best of times, it was the worst of times.", "Call me Ishmael. Some years ago."]
    got = scoring.perplexity(model, tok, texts, max_length=16, batch_size=2)
    stream = []
    for t in texts:
        stream += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    nll, n = 0.0, 0
    for s in range(0, len(stream), 16):  # no stride: independent windows, first token of each unscored
        w = torch.tensor([stream[s:s + 16]])
        with torch.no_grad():
            logits = model(w).logits[0, :-1]
        nll += float(torch.nn.functional.cross_entropy(logits, w[0, 1:], reduction="sum"))
        n += w.shape[1] - 1
    assert got["tokens"] == n
    assert got["eval_loss"] == pytest.approx(nll / n, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)
    # A random 2-layer model is near uniform over the vocabulary: perplexity close to its size.
    assert 0.3 * len(tok) < got["perplexity"] < 3 * len(tok)


def test_strided_perplexity_scores_every_token_once(tiny):
    model, tok = tiny
    text = ["one two three four five six seven eight nine ten eleven twelve thirteen fourteen"]
    plain = scoring.perplexity(model, tok, text, max_length=8)
    strided = scoring.perplexity(model, tok, text, max_length=8, stride=4)
    n_stream = len(tok(text[0], add_special_tokens=False)["input_ids"]) + 1
    assert strided["tokens"] == n_stream - 1  # every token but the first is predicted exactly once
    assert plain["tokens"] < strided["tokens"]  # without overlap, each window's first token goes unscored


def test_conversation_loss_counts_reply_tokens_only(tiny):
    from tunesmith.data.templates import IGNORE_INDEX, tokenize_conversation

    model, tok = tiny
    convs = [[{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi there!"}],
             [{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "One, two, three."}]]
    rows = [tokenize_conversation(tok, c) for c in convs]
    got = scoring.conversation_loss(model, tok, rows, batch_size=2)
    nll, n = 0.0, 0
    for r in rows:
        ids = torch.tensor([r.input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0], -1)
        for t in range(1, len(r.input_ids)):
            if r.labels[t] != IGNORE_INDEX:
                nll -= float(logp[t - 1, r.input_ids[t]])
                n += 1
    assert 0 < got["tokens"] == n < sum(len(r.input_ids) for r in rows) - 2  # the prompts are not scored
    assert got["eval_loss"] == pytest.approx(nll / n, rel=1e-5)


# Pairs that exercise prefix sharing: several options per context (of different lengths, one of a
# single token), options whose first token merges with the context's last characters ("wor" + "ld",
# "$1" + "00"), a context with trailing space, and two contexts that share a long start.
SHARED_PAIRS = [("The cat sat on the", " mat"), ("The cat sat on the", " sofa by the window"),
                ("The cat sat on the", " roof, looking down at the street below"), ("The cat sat on the", "."),
                ("Hello wor", "ld"), ("Hello wor", "ld peace"), ("Hello wor", "m"),
                ("It costs $1", "00"), ("It costs $1", "0 dollars"), ("It costs $1", ".50"),
                ("Trailing space moves ", "onto the continuation"), ("Trailing space moves ", "here"),
                ("Question: 2+2?\nAnswer:", " A"), ("Question: 2+2?\nAnswer:", " B"),
                ("Question: 2+2?\nAnswer: maybe", " four"), ("Question: 2+2?\nAnswer: maybe", " 4")]


def _direct_encoded(model, tok, context: str, continuation: str) -> float:
    """One unpadded forward over the tokens scoring._encode gives (ctx, then the continuation's own
    tokens where the boundary merges); sum the continuation's log-probs."""
    ctx, cont = scoring._encode(tok, context, continuation)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].float(), -1)
    return sum(float(logp[len(ctx) - 1 + k, t]) for k, t in enumerate(cont))


def test_merging_pairs_really_merge(tokenizer):
    # The fixture above means something only if the boundary merges: the joint tokenization of
    # "Hello wor" + "ld" does not start with the tokens of "Hello wor".
    ctx = tokenizer("Hello wor", add_special_tokens=False)["input_ids"]
    whole = tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    assert whole[:len(ctx)] != ctx


def test_shared_prefix_scoring_equals_reference_and_direct(tiny):
    model, tok = tiny
    want = [_direct_encoded(model, tok, c, x) for c, x in SHARED_PAIRS]
    ref = scoring.loglikelihoods_reference(model, tok, SHARED_PAIRS, batch_size=3)
    for batch_size in (1, 2, 16):  # one pack per batch, a few, all in one batch
        got = scoring.loglikelihoods(model, tok, SHARED_PAIRS, batch_size=batch_size)
        assert got == pytest.approx(want, abs=1e-4)
        assert got == pytest.approx(ref, abs=1e-4)


def test_options_of_one_context_share_one_packed_row(tiny, monkeypatch):
    model, tok = tiny
    seen = []
    orig = model.forward

    def counting(*a, **k):
        seen.append(tuple(k["input_ids"].shape))
        return orig(*a, **k)

    monkeypatch.setattr(model, "forward", counting)
    context = "A long shared context that all of the options continue from, word after word"
    pairs = [(context, " one"), (context, " two three"), (context, " four five six")]
    scoring.loglikelihoods(model, tok, pairs, batch_size=16)
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    assert len(seen) == 1 and seen[0][0] == 1  # one packed row
    assert seen[0][1] < 3 * n_ctx  # the context's tokens went in once, not three times


def test_packed_row_is_cut_from_the_left_like_the_reference(tiny):
    model, tok = tiny
    long_ctx = "word " * 300
    pairs = [(long_ctx, "tail end"), (long_ctx, "tail"), (long_ctx, "another longer tail end here")]
    got = scoring.loglikelihoods(model, tok, pairs, max_length=64)
    assert got == pytest.approx(scoring.loglikelihoods_reference(model, tok, pairs, max_length=64), abs=1e-4)


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2_dir)


def test_shared_prefix_scoring_on_the_real_model(smollm2):
    model, tok = smollm2
    want = [_direct_encoded(model, tok, c, x) for c, x in SHARED_PAIRS]
    got = scoring.loglikelihoods(model, tok, SHARED_PAIRS, batch_size=4)
    assert got == pytest.approx(want, abs=1e-4)
    assert all(g < 0 for g in got) and got[0] > got[2]  # a one-word ending beats a whole clause


def test_bfloat16_scoring_stays_close_to_the_reference(smollm2):
    model, tok = smollm2
    model = model.to(torch.bfloat16)
    try:
        got = scoring.loglikelihoods(model, tok, SHARED_PAIRS, batch_size=4)
        ref = scoring.loglikelihoods_reference(model, tok, SHARED_PAIRS, batch_size=4)
    finally:
        model.to(torch.float32)
    # bf16 rounds differently in a packed row than in separate rows (measured: up to ~0.18 nats on
    # these pairs); a wrong mask or position would be off by nats.
    assert got == pytest.approx(ref, abs=0.5)


def test_eager_attention_takes_the_tree_mask_too(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    want = [_direct_encoded(model, tok, c, x) for c, x in SHARED_PAIRS]
    assert scoring.loglikelihoods(model, tok, SHARED_PAIRS, batch_size=2) == pytest.approx(want, abs=1e-4)
