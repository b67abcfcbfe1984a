"""Packing: known layouts, no attention across examples (logits equal the unpacked ones), windows."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.pack import pack
from tunesmith.data.templates import IGNORE_INDEX, Tokenized, tokenize_conversation, windows


def _row(n, start=10):
    ids = list(range(start, start + n))
    return Tokenized(ids, [IGNORE_INDEX] * (n // 2) + ids[n // 2:])


def test_first_fit_decreasing_layout_and_efficiency():
    rows = [_row(5, 10), _row(3, 20), _row(4, 30), _row(2, 40)]
    packs, report = pack(rows, max_length=8, pad_id=0)
    assert [p.input_ids for p in packs] == [[10, 11, 12, 13, 14, 20, 21, 22], [30, 31, 32, 33, 40, 41, 0, 0]]
    assert packs[1].position_ids == [0, 1, 2, 3, 0, 1, 0, 1]
    assert report == {"examples": 4, "packs": 2, "max_length": 8, "efficiency": 0.875,
                      "padded_efficiency": 0.7}


def test_labels_keep_each_examples_mask_and_never_cross_a_boundary():
    rows = [_row(5, 10), _row(3, 20)]
    (p,), _ = pack(rows, max_length=8, pad_id=0)
    # the first token of every example is never a target; the rest is each row's own mask
    assert p.labels == [IGNORE_INDEX, IGNORE_INDEX, 12, 13, 14, IGNORE_INDEX, 21, 22]


def test_too_long_row_is_refused():
    with pytest.raises(ValueError, match="longer than max_length"):
        pack([_row(9)], max_length=8, pad_id=0)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_logits_equal_unpacked_logits(tiny_model_dir, tokenizer, attn):
    """No token attends across an example boundary: each packed example's logits equal its own run."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
    convs = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
             [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
             [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]]
    rows = [tokenize_conversation(tokenizer, c) for c in convs]
    (p,), _ = pack(rows, max_length=sum(len(r.input_ids) for r in rows) + 3, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        # use_cache=False as in training: with a KV cache transformers does not look for packed rows
        packed = model(input_ids=torch.tensor([p.input_ids]), position_ids=torch.tensor([p.position_ids]),
                       use_cache=False).logits[0]
        offset = 0
        starts = [i for i, pos in enumerate(p.position_ids) if pos == 0]
        for r in rows:
            alone = model(input_ids=torch.tensor([r.input_ids])).logits[0]
            start = next(s for s in starts if p.input_ids[s:s + len(r.input_ids)] == r.input_ids)
            torch.testing.assert_close(packed[start:start + len(r.input_ids)], alone, atol=1e-4, rtol=1e-4)
            offset += 1
    assert offset == 3


def test_windows_overlap_is_context_only():
    ws = windows(list(range(10)), max_length=4, stride=2)
    assert [w.input_ids for w in ws] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert [w.labels for w in ws] == [[0, 1, 2, 3], [IGNORE_INDEX, IGNORE_INDEX, 4, 5],
                                      [IGNORE_INDEX, IGNORE_INDEX, 6, 7], [IGNORE_INDEX, IGNORE_INDEX, 8, 9]]
    trained = [t for w in ws for t in w.labels if t != IGNORE_INDEX]
    assert trained == list(range(10))  # every token a target exactly once


def test_windows_without_overlap_and_a_short_tail():
    ws = windows(list(range(10)), max_length=4)
    assert [w.input_ids for w in ws] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
