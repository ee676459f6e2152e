"""Recall and NDCG for next-item prediction with one target per case.

With a single relevant item, Recall@K is 1 when the target is in the top K (0 otherwise)
and NDCG@K is 1 / log2(rank + 2) for a 0-based rank below K, since the ideal DCG is 1.
"""

from __future__ import annotations

import numpy as np

CUTOFFS = (5, 10, 20)
MAX_K = max(CUTOFFS)


def target_ranks(rankings: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based position of each target in its ranked list, -1 when absent."""
    hits = rankings == targets[:, None]
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1), -1)


def per_case(ranks: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS) -> dict[str, np.ndarray]:
    """Per-case metric values keyed ``recall@K`` and ``ndcg@K``."""
    ranks = np.asarray(ranks)
    values = {}
    for k in cutoffs:
        hit = (ranks >= 0) & (ranks < k)
        values[f"recall@{k}"] = hit.astype(np.float64)
        values[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return values


def summarise(ranks: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
    """Mean of every metric per subset; an empty subset maps every metric to ``None``.

    ``None`` renders as "n/a": an empty subset has no score, which is not a score of 0.
    """
    values = per_case(ranks)
    out: dict[str, dict[str, float | None]] = {}
    for subset, mask in masks.items():
        n = int(mask.sum())
        out[subset] = {name: (float(v[mask].mean()) if n else None) for name, v in values.items()}
        out[subset]["cases"] = n
    return out
