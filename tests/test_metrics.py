"""Metrics and the evaluator against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.components import CaseBatch, Recommender
from benchmark.data.splits import Cases
from benchmark.evaluation.evaluator import evaluate, rank_cases
from benchmark.evaluation.metrics import per_case, summarise, target_ranks


def test_target_ranks_finds_position_or_minus_one():
    rankings = np.array([[3, 1, 2], [0, 5, 4], [7, 8, 9]])
    assert target_ranks(rankings, np.array([2, 0, 1])).tolist() == [2, 0, -1]


def test_recall_and_ndcg_by_hand():
    values = per_case(np.array([0, 4, 5, 12, -1]))
    assert values["recall@5"].tolist() == [1, 1, 0, 0, 0]
    assert values["recall@10"].tolist() == [1, 1, 1, 0, 0]
    assert values["recall@20"].tolist() == [1, 1, 1, 1, 0]
    assert values["ndcg@5"][0] == pytest.approx(1.0)
    assert values["ndcg@5"][1] == pytest.approx(1 / math.log2(6))
    assert values["ndcg@5"][2] == 0.0
    assert values["ndcg@10"][2] == pytest.approx(1 / math.log2(7))
    assert values["ndcg@20"][3] == pytest.approx(1 / math.log2(14))


def test_summary_means_and_empty_subset_is_none():
    ranks = np.array([0, 1, -1, 3])
    masks = {"all": np.ones(4, bool), "warm": np.array([1, 1, 0, 0], bool), "cold": np.zeros(4, bool)}
    out = summarise(ranks, masks)
    assert out["all"]["recall@5"] == pytest.approx(0.75)
    assert out["all"]["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 0 + 1 / math.log2(5)) / 4)
    assert out["warm"]["recall@5"] == pytest.approx(1.0)
    assert out["cold"]["recall@5"] is None and out["cold"]["cases"] == 0


class FixedScores(Recommender):
    """Scores item i as -i (item 0 best) for everyone."""

    def __init__(self, n_items: int):
        self.n_items = n_items

    def score(self, batch: CaseBatch) -> np.ndarray:
        return np.tile(-np.arange(self.n_items, dtype=np.float32), (len(batch), 1))


class FixedLists(Recommender):
    """Generates 0, 1, 2, ... like a generative model returning its own list."""

    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
        return np.tile(np.arange(k), (len(batch), 1))


def _cases(targets, seen):
    n = len(targets)
    return Cases(
        users=np.arange(n), histories=[np.array(s) for s in seen], seen=[np.array(s) for s in seen],
        targets=np.array(targets), timestamps=np.zeros(n), cold=np.array([False] * n),
        groups=np.zeros(n, np.int64),
    )


@pytest.mark.parametrize("model", [FixedScores(30), FixedLists()])
def test_full_ranking_and_exclude_seen_agree_for_both_paths(model):
    cases = _cases(targets=[2, 25], seen=[[0, 1], [3]])
    kept = rank_cases(model, cases, 30, k=20, progress=False)
    assert kept[0].tolist() == list(range(20))
    excluded = rank_cases(model, cases, 30, k=20, exclude_seen=True, progress=False)
    assert excluded[0].tolist() == list(range(2, 22))
    assert 3 not in excluded[1] and excluded[1][0] == 0
    result = evaluate(model, cases, 30, exclude_seen=True, progress=False)
    assert result.ranks.tolist() == [0, -1]
    assert result.metrics["all"]["recall@5"] == pytest.approx(0.5)
    assert result.metrics["cold"]["ndcg@10"] is None
