"""Dealing training rows to federated clients (tunesmith/federated/partition.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tunesmith.data.formats import Example
from tunesmith.errors import TunesmithError
from tunesmith.federated.partition import client_rows, num_clients, split_indices


def fed(partition="iid", n=3):
    return SimpleNamespace(partition=partition, num_clients=n)


@pytest.mark.parametrize("how", ["iid", "shards"])
def test_every_row_goes_to_exactly_one_client_in_near_equal_parts(how):
    parts = split_indices(10, 3, how, seed=1)
    assert sorted(i for p in parts for i in p) == list(range(10))
    assert [len(p) for p in parts] == [4, 3, 3]


def test_shards_are_contiguous_in_file_order_and_iid_is_shuffled_by_the_seed():
    assert split_indices(7, 2, "shards", 0) == [[0, 1, 2, 3], [4, 5, 6]]
    iid = split_indices(40, 2, "iid", 0)
    assert iid != [list(range(20)), list(range(20, 40))]
    assert iid == split_indices(40, 2, "iid", 0) and iid != split_indices(40, 2, "iid", 1)


def _rows(files: dict[str, int]) -> list[Example]:
    return [Example(messages=[{"role": "user", "content": f"{f}{i}"}], file=f, line=i + 1)
            for f, n in files.items() for i in range(n)]


def test_files_partition_gives_client_k_the_rows_of_data_train_k():
    rows = _rows({"/a.jsonl": 3, "/b.jsonl": 5})
    parts = client_rows(rows, fed("files"), ["/a.jsonl", "/b.jsonl"], seed=0)
    assert num_clients(fed("files"), ["/a.jsonl", "/b.jsonl"]) == 2
    assert [len(p) for p in parts] == [3, 5]
    assert {ex.file for ex in parts[1]} == {"/b.jsonl"}


def test_a_client_without_rows_is_an_error_naming_it():
    with pytest.raises(TunesmithError) as err:
        client_rows(_rows({"/a.jsonl": 2}), fed("shards", 3), ["/a.jsonl"], seed=0)
    assert "client 2" in str(err.value) and "federated.partition" in str(err.value)
    with pytest.raises(TunesmithError, match=r"data.train\[1\]"):
        client_rows(_rows({"/a.jsonl": 2}), fed("files"), ["/a.jsonl", "/b.jsonl"], seed=0)
