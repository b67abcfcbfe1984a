"""Which training rows each federated client holds.

In a real federation every client already has its own data; in simulation they are dealt from the
config's data.train: iid (shuffled, equal parts), shards (contiguous parts in file order, non-IID
when the file is ordered by task or source) or files (client k holds data.train[k]). Flower's own
flwr-datasets partitioners work on Hugging Face datasets by label columns; our rows are chat or text
records from local files, and the three rules here are a few lines each.
"""

from __future__ import annotations

import random

from tunesmith.errors import fail


def num_clients(fed, train_files: list[str]) -> int:
    """How many clients the config describes."""
    return len(train_files) if fed.partition == "files" else fed.num_clients


def clients_per_round(fed, n: int) -> int:
    """Clients sampled to train each round: fraction_fit of the n clients, rounded up, at least one."""
    import math

    return max(1, math.ceil(fed.fraction_fit * n))


def split_indices(n: int, parts: int, how: str, seed: int) -> list[list[int]]:
    """Row indices 0..n-1 dealt into `parts` near-equal lists: shuffled (iid) or in order (shards).
    The first n % parts lists hold one row more."""
    order = list(range(n))
    if how == "iid":
        random.Random(seed).shuffle(order)
    size, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (k < extra)
        out.append(sorted(order[start:end]) if how == "iid" else order[start:end])
        start = end
    return out


def client_rows(examples: list, fed, train_files: list[str], seed: int) -> list[list]:
    """`examples` (data.Example rows of data.train, validation already held out) split per client.
    Raises when a client would hold no row."""
    parts = num_clients(fed, train_files)
    if fed.partition == "files":
        by_file = {str(f): k for k, f in enumerate(train_files)}
        out = [[] for _ in range(parts)]
        for ex in examples:
            out[by_file[str(ex.file)]].append(ex)
    else:
        out = [[examples[i] for i in idx] for idx in split_indices(len(examples), parts, fed.partition, seed)]
    empty = [k for k, rows in enumerate(out) if not rows]
    if empty:
        where = f"data.train[{empty[0]}] ({train_files[empty[0]]})" if fed.partition == "files" else \
            f"{len(examples)} training rows"
        raise fail(f"federated client {empty[0]} would hold no training rows: {where}",
                   "give every client rows: fewer federated.num_clients, more data, or a non-empty file",
                   field="federated.partition")
    return out
