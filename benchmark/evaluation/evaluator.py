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
- **The contract is checked**: scores of another shape or type, lists with a row count other
  than the batch's, non-integer ids or ids outside the catalog (``-1`` pads short lists), and a
  recommender with neither ``score`` nor ``recommend`` stop the run with a
  :class:`~benchmark.errors.PluginError` naming the recommender and the rule it broke.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.components import CaseBatch, Recommender
from benchmark.data.splits import Cases
from benchmark.errors import PluginError
from benchmark.evaluation.metrics import MAX_K, summarise, target_ranks


class ScoreError(PluginError):
    """A recommender broke its contract: scores the evaluator cannot rank (wrong shape or type,
    NaN, inf), lists of the wrong shape or with ids outside the catalog, or neither method."""


def implements_recommend(recommender: Recommender) -> bool:
    """Whether ``recommender`` has its own ``recommend`` (not the base class's)."""
    return getattr(type(recommender), "recommend", Recommender.recommend) is not Recommender.recommend


def ranking_method(recommender: Recommender, name: str) -> str:
    """``"score"`` or ``"recommend"``: which of the two a recommender implements (a subclass
    of :class:`Recommender` overriding it, or any object defining it); a :class:`ScoreError`
    when it implements neither (the base class would raise a bare NotImplementedError)."""
    kind = type(recommender)
    if getattr(kind, "score", Recommender.score) is not Recommender.score:
        return "score"
    if implements_recommend(recommender):
        return "recommend"
    raise ScoreError(f"{name}: {kind.__name__} implements neither score() nor recommend(); implement "
                     "score(batch) (one score per catalog item) or recommend(batch, k) (its own top-k lists)")


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
        # A recommender implementing both may answer a batch with lists (rpg's graph decoding).
        if not implements_recommend(recommender):
            raise ScoreError(f"{name}: score() returned None (a list-based recommender's answer) but it does not "
                             "implement recommend(batch, k); return scores, or implement recommend")
        lists = _checked_lists(recommender.recommend(batch, k), len(batch), k, n_items, name)
        return _clean_lists(lists, batch.exclude, k)
    # A copy: masking below must never write into the recommender's own arrays.
    scores = torch.tensor(_checked_scores(scores, len(batch), n_items, name), dtype=torch.float32)
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


def _as_array(value, what: str, name: str) -> np.ndarray:
    if value is None:
        raise ScoreError(f"{name}: {what} returned None; return one row of "
                         f"{'item indices' if what.startswith('recommend') else 'scores'} per case")
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0].split(". ")[0]
        if "inhomogeneous" in str(error):
            raise ScoreError(f"{name}: {what} returned rows of different lengths ({reason}); return a "
                             "rectangular array, one row per case") from None
        raise ScoreError(f"{name}: {what} returned a {type(value).__name__} that is not an array ({reason}); "
                         "return a numpy array (a CPU one)") from None


def _checked_scores(scores, cases: int, n_items: int, name: str) -> np.ndarray:
    """``score()``'s answer as an array of shape (cases, n_items) of real numbers."""
    array = _as_array(scores, "score()", name)
    if array.dtype.kind not in "biuf":
        raise ScoreError(f"{name}: score() returned {array.dtype} values; return real numbers (floats), one per "
                         "case and catalog item")
    if array.shape != (cases, n_items):
        raise ScoreError(f"{name}: score() returned shape {array.shape} for a batch of {cases} cases and {n_items} "
                         "items; return one score per case and catalog item, shape (len(batch), n_items) in "
                         "item-index order")
    return array


def _checked_lists(lists, cases: int, k: int, n_items: int, name: str) -> np.ndarray:
    """``recommend()``'s answer as int64 lists, one row per case, ids in ``-1 .. n_items-1``."""
    array = _as_array(lists, "recommend()", name)
    if array.ndim != 2 or len(array) != cases:
        found = (f"{len(array)} row{'' if len(array) == 1 else 's'}" if array.ndim == 2
                 else f"an array of shape {array.shape}")
        raise ScoreError(f"{name}: recommend(batch, k={k}) returned {found} for a batch of {cases} cases; return "
                         "one row of item indices per case, shape (len(batch), k)")
    if array.dtype.kind not in "iu":
        raise ScoreError(f"{name}: recommend() returned {array.dtype} values; return integer item indices (e.g. "
                         "an np.int64 array)")
    outside = (array < -1) | (array >= n_items)
    if outside.any():
        raise ScoreError(f"{name}: recommend() returned item index {array[outside][0]}, outside the catalog's "
                         f"0..{n_items - 1} (-1 pads short lists); return item indices of the catalog")
    return array.astype(np.int64, copy=False)


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
