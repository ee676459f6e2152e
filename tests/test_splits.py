"""Preprocessing and splits: leave-one-out, temporal, warm/cold, popularity groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import prepared

from benchmark.data.dataset import RawDataset, k_core, prepare
from benchmark.data.splits import DEFAULT_MAX_HISTORY, leave_one_out, make_split, popularity_groups, temporal
from benchmark.data.synthetic import make_synthetic
from benchmark.errors import BenchmarkError


def test_leave_one_out_holds_out_last_two_items():
    data = prepared([[0, 1, 2, 3], [4, 5, 6], [3, 2]])
    split = leave_one_out(data)
    assert [s.tolist() for s in split.train] == [[0, 1], [4], [3, 2]]
    assert split.test.targets.tolist() == [3, 6]
    assert split.valid.targets.tolist() == [2, 5]
    assert [h.tolist() for h in split.test.histories] == [[0, 1, 2], [4, 5]]
    assert [h.tolist() for h in split.valid.histories] == [[0, 1], [4]]
    # item 6 never occurs in training: its test case is cold
    assert split.test.cold.tolist() == [False, True]


def test_histories_are_capped_but_seen_items_are_not():
    data = prepared([list(range(40))])
    split = leave_one_out(data)
    assert len(split.test.histories[0]) == DEFAULT_MAX_HISTORY
    assert split.test.histories[0].tolist() == list(range(19, 39))
    assert len(split.test.seen[0]) == 39


def test_temporal_split_cuts_globally_by_time():
    sequences = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    times = [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    split = temporal(prepared(sequences, times))
    # 10 interactions: cut at the 8th (t=9) and the 9th (t=10)
    assert [s.tolist() for s in split.train] == [[0, 1, 2, 3, 4], [5, 6, 7]]
    assert split.valid.targets.tolist() == [8]
    assert split.test.targets.tolist() == [9]
    assert split.test.histories[0].tolist() == [5, 6, 7, 8]
    assert split.test.cold.tolist() == [True]
    assert split.info["valid_from"] == 9.0


def test_temporal_never_trains_on_later_interactions():
    split = make_split("temporal", prepare(make_synthetic(seed=3)))
    last_train = max(ts.max() for ts in split.train_timestamps if len(ts))
    assert last_train < split.valid.timestamps.min() <= split.test.timestamps.min()
    assert len(split.valid) > 0 and len(split.test) > 0


def test_popularity_groups_are_equal_quarters_most_popular_first():
    counts = np.array([10, 0, 7, 1, 3, 5, 2, 9, 4])
    groups = popularity_groups(counts)
    assert groups[1] == -1
    assert groups[0] == 0 and groups[7] == 0
    assert groups[3] == 3
    assert np.bincount(groups[groups >= 0]).tolist() == [2, 2, 2, 2]


def test_k_core_removes_until_stable():
    df = pd.DataFrame({"user": ["a", "a", "b", "b", "c"], "item": ["x", "y", "x", "y", "x"],
                       "timestamp": [1, 2, 3, 4, 5]})
    kept = k_core(df, 2)
    assert set(kept["user"]) == {"a", "b"} and set(kept["item"]) == {"x", "y"}


def test_ids_are_remapped_randomly_not_by_first_appearance():
    raw = make_synthetic(seed=1)
    data = prepare(raw)
    first_seen = pd.unique(raw.interactions.sort_values("timestamp")["item"])
    order = [data.item_ids.tolist().index(i) for i in first_seen if i in set(data.item_ids)]
    # With ids in order of first appearance this correlation would be exactly 1.
    assert abs(np.corrcoef(order, np.arange(len(order)))[0, 1]) < 0.5
    assert prepare(raw).digest() == data.digest()


def test_prepare_drops_duplicate_pairs_and_keeps_text():
    raw = RawDataset(
        name="dup",
        interactions=pd.DataFrame({"user": ["u"] * 3, "item": ["a", "a", "b"], "timestamp": [1.0, 2.0, 3.0]}),
        items=pd.DataFrame({"title": ["A", "B"]}, index=pd.Index(["a", "b"])),
        text_fields=("title",),
    )
    data = prepare(raw, k=1)
    assert data.n_interactions == 2
    assert sorted(t["title"] for t in data.item_text) == ["A", "B"]


def test_unknown_split_names_the_known_ones():
    with pytest.raises(BenchmarkError, match="known splits: loo, temporal"):
        make_split("random", prepared([[0, 1, 2]]))
