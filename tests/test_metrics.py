"""Metrics and the evaluator against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.components import CaseBatch, Recommender
from benchmark.data.splits import Cases
from benchmark.evaluation.evaluator import ScoreError, evaluate, rank_cases
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
    """Generates 0, 1, 2, ... like a generative model returning its own list; records the
    items it was asked to exclude."""

    def __init__(self):
        self.asked_to_exclude: list | None = None

    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
        self.asked_to_exclude = batch.exclude
        return np.tile(np.arange(k), (len(batch), 1))


class ConstantScores(Recommender):
    def __init__(self, n_items: int, value: float = 1.0):
        self.n_items, self.value = n_items, value

    def score(self, batch: CaseBatch) -> np.ndarray:
        return np.full((len(batch), self.n_items), self.value, np.float32)


def _cases(targets, seen):
    n = len(targets)
    return Cases(
        users=np.arange(n), histories=[np.array(s) for s in seen], seen=[np.array(s) for s in seen],
        targets=np.array(targets), timestamps=np.zeros(n), cold=np.array([False] * n),
        groups=np.zeros(n, np.int64), new_user=np.zeros(n, bool),
    )


@pytest.mark.parametrize("model", [FixedScores(30), FixedLists()])
def test_full_ranking_and_seen_items_agree_for_both_paths(model):
    cases = _cases(targets=[2, 25], seen=[[0, 1], [3]])
    kept = rank_cases(model, cases, 30, k=20, keep_seen=True, progress=False)
    assert kept[0].tolist() == list(range(20))
    excluded = rank_cases(model, cases, 30, k=20, progress=False)  # the default protocol
    assert 3 not in excluded[1] and excluded[1][0] == 0
    result = evaluate(model, cases, 30, progress=False)
    assert result.metrics["all"]["recall@5"] == pytest.approx(0.5)
    assert result.metrics["cold"]["ndcg@10"] is None
    if isinstance(model, FixedScores):
        assert excluded[0].tolist() == list(range(2, 22))
        assert result.ranks.tolist() == [0, -1]
    else:
        # A list-based model gets the items to leave out with the batch, and the harness
        # does not over-fetch for it: what it returns that is excluded is dropped.
        assert [a.tolist() for a in model.asked_to_exclude] == [[0, 1], [3]]
        assert excluded[0].tolist() == list(range(2, 20)) + [-1, -1]
        rank_cases(model, cases, 30, k=20, keep_seen=True, progress=False)
        assert model.asked_to_exclude is None


def test_ties_rank_the_target_below_every_equal_score():
    n_items = 50
    cases = _cases(targets=list(range(10)), seen=[[] for _ in range(10)])
    # A constant model ranks no target (an id-ordered tie-break would give R@10 = 1 here).
    result = evaluate(ConstantScores(n_items), cases, n_items, progress=False)
    assert result.ranks.tolist() == [-1] * 10
    assert result.metrics["all"]["recall@20"] == 0.0

    class TwoLevels(Recommender):
        def score(self, batch):
            scores = np.zeros((len(batch), n_items), np.float32)
            scores[:, :5] = 1.0  # items 0..4 tie at the top
            return scores

    # Target 3 ties with 4 other items: it ranks 5th (0-based 4), after all of them.
    result = evaluate(TwoLevels(), _cases([3, 30], [[], []]), n_items, progress=False)
    assert result.ranks[0] == 4
    assert result.rankings[0][:4].tolist() == [0, 1, 2, 4] and result.rankings[0][4] == 3
    assert result.ranks[1] == -1  # 45 items tie at 0: the target is last of them


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_stop_the_run_naming_the_method(bad):
    cases = _cases(targets=[1], seen=[[]])

    class Broken(FixedScores):
        def score(self, batch):
            scores = super().score(batch)
            scores[0, 7] = bad
            return scores

    with pytest.raises(ScoreError, match="my-method: score\\(\\) returned NaN or infinite scores for 1 of 1"):
        evaluate(Broken(30), cases, 30, progress=False, name="my-method")


def test_masking_never_writes_into_the_recommenders_arrays():
    counts = np.arange(30, dtype=np.float32)

    class Shared(Recommender):
        def score(self, batch):
            return np.broadcast_to(counts, (len(batch), 30))

    evaluate(Shared(), _cases([5, 6], [[29, 28], [27]]), 30, progress=False)
    assert np.isfinite(counts).all()
