"""Rank the whole catalog for every case and score the ranking.

Protocol (the same for every method):

- **Seen items** (the user's earlier items) are left out of every ranking unless
  ``keep_seen`` (the generative papers' protocol, ``--keep-seen``). Preprocessing keeps one
  (user, item) pair, so a target is never among them: ranking them only measures whether a
  model scores a user's own history. Score-based recommenders are masked here; list-based
  ones get the items with the batch (``CaseBatch.exclude``) and prune them themselves, and
  whatever excluded item they still return is dropped.
- **Ties are pessimistic**: the target ranks below every item with an equal score, so a
  model that gives every item the same score ranks no target (no lucky id order).
- **Non-finite scores** (NaN, inf) stop the run with an error naming the recommender.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.components import CaseBatch, Recommender
from benchmark.data.splits import Cases
from benchmark.errors import BenchmarkError
from benchmark.evaluation.metrics import MAX_K, summarise, target_ranks


class ScoreError(BenchmarkError):
    """A recommender returned scores the evaluator cannot rank (wrong shape, NaN, inf)."""


@dataclass
class Evaluation:
    """Top-``MAX_K`` lists, target ranks and metrics for one set of cases."""

    rankings: np.ndarray
    ranks: np.ndarray
    metrics: dict[str, dict[str, float | None]]
    seconds: float

    @property
    def seconds_per_1000(self) -> float:
        return 1000.0 * self.seconds / max(1, len(self.ranks))


def batches(cases: Cases, batch_size: int, keep_seen: bool = False):
    for start in range(0, len(cases), batch_size):
        index = np.arange(start, min(start + batch_size, len(cases)))
        seen = [cases.seen[i] for i in index]
        yield index, CaseBatch(
            users=cases.users[index],
            histories=[cases.histories[i] for i in index],
            seen=seen,
            exclude=None if keep_seen else seen,
        )


def rank_cases(
    recommender: Recommender,
    cases: Cases,
    n_items: int,
    k: int = MAX_K,
    keep_seen: bool = False,
    batch_size: int = 256,
    desc: str = "rank",
    progress: bool = True,
    name: str | None = None,
) -> np.ndarray:
    """Top-``k`` item lists (``-1`` where a recommender returned fewer) for every case.

    Equal scores are ordered with the case's target last, so the target's position in
    the list is its pessimistic rank. ``name`` names the recommender in errors.
    """
    name = name or type(recommender).__name__
    out = np.full((len(cases), k), -1, np.int64)
    with torch.no_grad():
        for index, batch in tqdm(
            batches(cases, batch_size, keep_seen),
            total=(len(cases) + batch_size - 1) // batch_size,
            desc=desc,
            unit="batch",
            disable=not progress,
            leave=False,
        ):
            out[index] = _rank_batch(recommender, batch, cases.targets[index], n_items, k, name)
    return out


def _rank_batch(recommender, batch: CaseBatch, targets: np.ndarray, n_items: int, k: int, name: str) -> np.ndarray:
    scores = recommender.score(batch)
    if scores is None:
        return _clean_lists(np.asarray(recommender.recommend(batch, k), np.int64), batch.exclude, k)
    # A copy: masking below must never write into the recommender's own arrays.
    scores = torch.tensor(np.asarray(scores), dtype=torch.float32)
    if scores.shape != (len(batch), n_items):
        raise ScoreError(f"{name}: score() returned shape {tuple(scores.shape)}, expected ({len(batch)}, {n_items})")
    finite = torch.isfinite(scores)
    if not finite.all():
        bad = int((~finite.all(dim=1)).sum())
        raise ScoreError(
            f"{name}: score() returned NaN or infinite scores for {bad} of {len(batch)} cases; "
            "a recommender must give every item a finite score (mask nothing itself: the harness does)"
        )
    if batch.exclude is not None:
        for row, items in enumerate(batch.exclude):
            scores[row, torch.as_tensor(items, dtype=torch.long)] = -torch.inf
    # Pessimistic ties: visit columns with the target moved last, then sort stably, so
    # among equal scores the target comes after every other item.
    columns = torch.arange(n_items).expand(len(batch), n_items)
    is_target = columns == torch.as_tensor(targets)[:, None]
    visit = torch.argsort(is_target.to(torch.int8), dim=1, stable=True)
    order = torch.argsort(scores.gather(1, visit), dim=1, descending=True, stable=True)[:, :k]
    return visit.gather(1, order).numpy()


def _clean_lists(lists: np.ndarray, exclude: list[np.ndarray] | None, k: int) -> np.ndarray:
    """Top-``k`` per case of a list-based recommender, excluded items and repeats dropped."""
    rows = []
    for row, items in enumerate(lists):
        items = items[items >= 0]
        if exclude is not None:
            items = items[~np.isin(items, exclude[row])]
        _, first = np.unique(items, return_index=True)
        rows.append(items[np.sort(first)][:k])
    return np.stack([_pad(r[None, :], k)[0] for r in rows]) if rows else np.zeros((0, k), np.int64)


def _pad(lists: np.ndarray, k: int) -> np.ndarray:
    if lists.shape[1] >= k:
        return lists[:, :k]
    pad = np.full((lists.shape[0], k - lists.shape[1]), -1, np.int64)
    return np.concatenate([lists, pad], axis=1)


def evaluate(
    recommender: Recommender,
    cases: Cases,
    n_items: int,
    keep_seen: bool = False,
    desc: str = "evaluate",
    progress: bool = True,
    name: str | None = None,
) -> Evaluation:
    """Full-ranking evaluation of ``recommender`` on ``cases`` (all subsets)."""
    start = time.perf_counter()
    rankings = rank_cases(recommender, cases, n_items, MAX_K, keep_seen, desc=desc, progress=progress, name=name)
    seconds = time.perf_counter() - start
    ranks = target_ranks(rankings, cases.targets)
    return Evaluation(rankings, ranks, summarise(ranks, cases.masks()), seconds)
