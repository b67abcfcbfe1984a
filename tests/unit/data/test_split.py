"""Splits: exact sizes, label proportions, time order, whole groups, leakage detection, seeds."""

from __future__ import annotations

from collections import Counter

import pytest

from tunesmith.data.split import allocate, get_path, leakage, split_rows
from tunesmith.errors import TunesmithError

RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def rows_n(n: int) -> list[dict]:
    return [{"text": f"row {i}"} for i in range(n)]


def check_partition(splits: dict[str, list[int]], n: int) -> None:
    every = [i for ix in splits.values() for i in ix]
    assert sorted(every) == list(range(n)), "every row in exactly one split"
    assert all(ix == sorted(ix) for ix in splits.values())


# --------------------------------------------------------------------------- sizes and ratios


@pytest.mark.parametrize(("n", "ratios", "sizes"), [
    (100, RATIOS, {"train": 80, "validation": 10, "test": 10}),
    (10, {"train": 0.7, "validation": 0.2, "test": 0.1}, {"train": 7, "validation": 2, "test": 1}),
    (7, {"a": 0.5, "b": 0.5}, {"a": 4, "b": 3}),          # a tie goes to the split named first
    (100, {"a": 0.29, "b": 0.71}, {"a": 29, "b": 71}),    # 100 * 0.29 is 28.999... in floating point
    (3, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, {"a": 1, "b": 1, "c": 1}),
    (0, RATIOS, {"train": 0, "validation": 0, "test": 0}),
])
def test_random_split_exact_sizes(n, ratios, sizes):
    assert allocate(n, ratios) == sizes
    splits = split_rows(rows_n(n), ratios)
    assert list(splits) == list(ratios)
    assert {k: len(v) for k, v in splits.items()} == sizes
    check_partition(splits, n)


@pytest.mark.parametrize("ratios", [{"train": 0.8, "test": 0.1}, {"train": 0.9, "test": 0.2},
                                    {"train": 1.2, "test": -0.2}, {}, {"train": "0.5", "test": 0.5}])
def test_bad_ratios_are_a_user_error(ratios):
    with pytest.raises(TunesmithError, match="ratios|no splits"):
        split_rows(rows_n(10), ratios)


def test_ratios_within_tolerance_are_accepted():
    assert len(split_rows(rows_n(10), {"a": 0.7 + 5e-7, "b": 0.3})["a"]) == 7


def test_unknown_method_and_missing_key():
    with pytest.raises(TunesmithError, match="unknown split method 'stratify'"):
        split_rows(rows_n(10), RATIOS, method="stratify")
    with pytest.raises(TunesmithError, match="needs key="):
        split_rows(rows_n(10), RATIOS, method="grouped")


# --------------------------------------------------------------------------- seeds


def test_random_split_is_deterministic_under_seed():
    rows = rows_n(200)
    a = split_rows(rows, RATIOS, seed=1)
    assert split_rows(rows, RATIOS, seed=1) == a
    assert split_rows(rows, RATIOS, seed=2) != a
    assert split_rows(rows, RATIOS) == split_rows(rows, RATIOS, seed=42)
    assert a["train"] != list(range(160)), "rows are shuffled, not cut in file order"


def test_stratified_and_grouped_follow_the_seed():
    rows = [{"label": i % 3, "user": i // 4} for i in range(120)]
    for method, key in (("stratified", "label"), ("grouped", "user")):
        a = split_rows(rows, RATIOS, method=method, key=key, seed=7)
        assert split_rows(rows, RATIOS, method=method, key=key, seed=7) == a
        assert split_rows(rows, RATIOS, method=method, key=key, seed=8) != a


# --------------------------------------------------------------------------- stratified


def test_stratified_keeps_label_proportions():
    # 70 / 20 / 10 rows of three labels, in file order (a cut in order would put all "c" in test)
    rows = [{"label": lab} for lab, k in (("a", 70), ("b", 20), ("c", 10)) for _ in range(k)]
    splits = split_rows(rows, RATIOS, method="stratified", key="label")
    check_partition(splits, 100)
    assert {k: len(v) for k, v in splits.items()} == {"train": 80, "validation": 10, "test": 10}
    assert Counter(rows[i]["label"] for i in splits["train"]) == {"a": 56, "b": 16, "c": 8}
    assert Counter(rows[i]["label"] for i in splits["validation"]) == {"a": 7, "b": 2, "c": 1}
    assert Counter(rows[i]["label"] for i in splits["test"]) == {"a": 7, "b": 2, "c": 1}


@pytest.mark.parametrize("seed", range(5))
def test_stratified_within_one_row_per_label_on_awkward_counts(seed):
    counts = {"x": 13, "y": 7, "z": 3, "w": 1}
    rows = [{"meta": {"label": lab}} for lab, k in counts.items() for _ in range(k)]
    ratios = {"train": 0.6, "validation": 0.25, "test": 0.15}
    splits = split_rows(rows, ratios, method="stratified", key="meta.label", seed=seed)
    check_partition(splits, len(rows))
    assert {k: len(v) for k, v in splits.items()} == allocate(len(rows), ratios)
    for name, ix in splits.items():
        got = Counter(rows[i]["meta"]["label"] for i in ix)
        for lab, k in counts.items():
            assert abs(got[lab] - k * ratios[name]) < 1, (name, lab, got[lab])


# --------------------------------------------------------------------------- temporal


def test_temporal_oldest_first_newest_last():
    dates = ["2024-03-01", "2023-01-15T08:00:00Z", "2024-12-31T23:59:59+00:00", "2022-06-01",
             "2024-06-01 12:00", "2023-07-04", "2021-01-01", "2024-01-01", "2023-12-31", "2020-05-05"]
    rows = [{"created": d} for d in dates]
    splits = split_rows(rows, {"train": 0.6, "validation": 0.2, "test": 0.2}, method="temporal", key="created")
    check_partition(splits, 10)
    # oldest to newest: rows 9, 6, 3, 1, 5, 8 | 7, 0 | 4, 2
    assert splits == {"train": [1, 3, 5, 6, 8, 9], "validation": [0, 7], "test": [2, 4]}


def test_temporal_reads_unix_timestamps_and_mixed_forms():
    rows = [{"t": 1_700_000_000}, {"t": "1600000000"}, {"t": 1_650_000_000.5}, {"t": "2024-01-01T00:00:00Z"}]
    splits = split_rows(rows, {"old": 0.5, "new": 0.5}, method="temporal", key="t")
    assert splits == {"old": [1, 2], "new": [0, 3]}  # 2024-01-01 is 1704067200


def test_temporal_bad_dates_name_the_row_and_value():
    rows = [{"t": "2024-01-01"}, {"t": "yesterday"}, {"t": "2024-01-02"}, {}, {"t": True}]
    with pytest.raises(TunesmithError) as info:
        split_rows(rows, {"a": 0.5, "b": 0.5}, method="temporal", key="t")
    text = str(info.value)
    assert "row 1: 'yesterday' is not a date" in text
    assert "row 3: missing is not a date" in text
    assert "row 4: True is not a date" in text
    assert "row 0" not in text and "row 2" not in text


# --------------------------------------------------------------------------- grouped and leakage


def conversations() -> list[dict]:
    # 40 conversations of 1 to 6 turns each, ids nested under meta
    rows = []
    for c in range(40):
        rows += [{"meta": {"conversation": f"c{c}"}, "turn": t} for t in range(1 + c % 6)]
    return rows


def test_grouped_never_splits_a_group():
    rows = conversations()
    splits = split_rows(rows, RATIOS, method="grouped", key="meta.conversation")
    check_partition(splits, len(rows))
    assert leakage(rows, splits, "meta.conversation") == {}
    # sizes land near the ratios (within the largest group, 6 rows)
    for name, ratio in RATIOS.items():
        assert abs(len(splits[name]) - ratio * len(rows)) <= 6, name
    assert all(splits.values()), "every split gets at least one group"


def test_leakage_detects_a_planted_leak():
    rows = conversations()
    splits = split_rows(rows, RATIOS, method="grouped", key="meta.conversation")
    # move one row of a multi-row training conversation into test
    sizes = Counter(rows[i]["meta"]["conversation"] for i in splits["train"])
    leaked = next(c for c, k in sizes.items() if k > 1)
    moved = next(i for i in splits["train"] if rows[i]["meta"]["conversation"] == leaked)
    planted = {"train": [i for i in splits["train"] if i != moved], "validation": splits["validation"],
               "test": sorted(splits["test"] + [moved])}
    assert leakage(rows, planted, "meta.conversation") == {("train", "test"): [leaked]}


def test_random_split_leaks_groups_that_grouped_keeps_whole():
    rows = conversations()
    leaks = leakage(rows, split_rows(rows, RATIOS), "meta.conversation")
    assert leaks and all(isinstance(k, tuple) and len(k) == 2 for k in leaks)


def test_grouped_missing_key_names_rows():
    rows = [{"user": "u1"}, {"other": 1}, {"user": None}]
    with pytest.raises(TunesmithError) as info:
        split_rows(rows, {"a": 0.5, "b": 0.5}, method="grouped", key="user")
    assert "row 1 has no value at 'user'" in str(info.value)
    assert "row 2 has no value at 'user'" in str(info.value)


def test_dotted_keys_and_unhashable_values():
    assert get_path({"meta": {"user": "u"}}, "meta.user") == "u"
    assert get_path({"meta.user": "flat", "meta": {"user": "nested"}}, "meta.user") == "flat"
    rows = [{"tags": ["a", "b"]}, {"tags": ["a", "b"]}, {"tags": ["c"]}, {"tags": ["d"]}]
    splits = split_rows(rows, {"a": 0.5, "b": 0.5}, method="grouped", key="tags")
    assert leakage(rows, splits, "tags") == {}
    assert any({0, 1} <= set(ix) for ix in splits.values()), "equal lists are one group"
