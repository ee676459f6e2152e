"""Rank the whole catalog for every case and score the ranking.

Recommenders that score the catalog in one pass are masked (``--exclude-seen``) and cut
to the top ``MAX_K`` here; generative recommenders return their own lists, over-fetched
by the longest history when seen items must be dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.components import CaseBatch, Recommender
from benchmark.data.splits import Cases
from benchmark.evaluation.metrics import MAX_K, summarise, target_ranks


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


def batches(cases: Cases, batch_size: int):
    for start in range(0, len(cases), batch_size):
        index = np.arange(start, min(start + batch_size, len(cases)))
        yield CaseBatch(
            users=cases.users[index],
            histories=[cases.histories[i] for i in index],
            seen=[cases.seen[i] for i in index],
        )


def rank_cases(
    recommender: Recommender,
    cases: Cases,
    n_items: int,
    k: int = MAX_K,
    exclude_seen: bool = False,
    batch_size: int = 256,
    desc: str = "rank",
    progress: bool = True,
) -> np.ndarray:
    """Top-``k`` item lists (``-1`` where a recommender returned fewer) for every case."""
    out = np.full((len(cases), k), -1, np.int64)
    row = 0
    with torch.no_grad():
        for batch in tqdm(
            batches(cases, batch_size),
            total=(len(cases) + batch_size - 1) // batch_size,
            desc=desc,
            unit="batch",
            disable=not progress,
            leave=False,
        ):
            out[row : row + len(batch)] = _rank_batch(recommender, batch, n_items, k, exclude_seen)
            row += len(batch)
    return out


def _rank_batch(recommender, batch, n_items, k, exclude_seen) -> np.ndarray:
    scores = recommender.score(batch)
    if scores is not None:
        scores = torch.tensor(np.asarray(scores), dtype=torch.float32)
        if scores.shape != (len(batch), n_items):
            raise ValueError(
                f"{type(recommender).__name__}.score returned shape {tuple(scores.shape)}, "
                f"expected ({len(batch)}, {n_items})"
            )
        if exclude_seen:
            for row, seen in enumerate(batch.seen):
                scores[row, torch.as_tensor(seen)] = -torch.inf
        # Break exact ties by item id so results do not depend on the sort's internals.
        order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
        return order.numpy()
    extra = max((len(s) for s in batch.seen), default=0) if exclude_seen else 0
    lists = np.asarray(recommender.recommend(batch, k + extra), np.int64)
    if not exclude_seen:
        return _pad(lists[:, :k], k)
    rows = []
    for items, seen in zip(lists, batch.seen):
        keep = items[(items >= 0) & ~np.isin(items, seen)]
        rows.append(keep[:k])
    return np.stack([_pad(r[None, :], k)[0] for r in rows])


def _pad(lists: np.ndarray, k: int) -> np.ndarray:
    if lists.shape[1] >= k:
        return lists[:, :k]
    pad = np.full((lists.shape[0], k - lists.shape[1]), -1, np.int64)
    return np.concatenate([lists, pad], axis=1)


def evaluate(
    recommender: Recommender,
    cases: Cases,
    n_items: int,
    exclude_seen: bool = False,
    desc: str = "evaluate",
    progress: bool = True,
) -> Evaluation:
    """Full-ranking evaluation of ``recommender`` on ``cases`` (all subsets)."""
    start = time.perf_counter()
    rankings = rank_cases(recommender, cases, n_items, MAX_K, exclude_seen, desc=desc, progress=progress)
    seconds = time.perf_counter() - start
    ranks = target_ranks(rankings, cases.targets)
    return Evaluation(rankings, ranks, summarise(ranks, cases.masks()), seconds)
