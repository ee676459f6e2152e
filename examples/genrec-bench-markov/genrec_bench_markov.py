"""genrec-bench plugin: a first-order Markov-chain next-item recommender.

The model counts item-to-item transitions (consecutive pairs) in the training sequences
and scores every catalog item by the additively smoothed probability of following the
last item of the history::

    P(j | i) = (count(i -> j) + smoothing) / (total(i) + smoothing * n_items)

A popularity prior worth less than half a transition count is added before
normalising, so it only breaks ties: between items with equal transition counts (and
for histories whose last item was never followed by anything, or empty histories) the
more popular item ranks first.

Installed with ``pip install -e examples/genrec-bench-markov``, it is found through the
``genrec_bench`` entry point ``markov``; ``genrec-bench run --methods markov`` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmark import hookimpl
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    MethodSpec,
    Recommender,
    RecommenderSpec,
    TrainingData,
)
from benchmark.params import Param

__version__ = "0.1.0"

PARAMS = (
    Param("smoothing", float, 0.1, "additive smoothing of transition counts", low=0.0, high=1.0,
          minimum=0.0),
)
PRIOR_WEIGHT = 0.5
"""Weight of the popularity prior, in transition counts; below 1 so it only breaks ties."""


class MarkovChain(Recommender):
    """First-order Markov chain over atomic item ids, stored sparsely (CSR-like rows).

    Only observed transitions are kept, so memory grows with the number of distinct
    consecutive pairs, not with ``n_items ** 2``.
    """

    accepts = frozenset({"atomic"})

    def __init__(self, smoothing: float = 0.1) -> None:
        if smoothing < 0:
            raise ValueError(f"markov: smoothing must be >= 0, got {smoothing}")
        self.smoothing = float(smoothing)
        self.n_items = 0
        self.row_start = np.zeros(1, np.int64)
        self.next_items = np.zeros(0, np.int64)
        self.counts = np.zeros(0, np.float64)
        self.row_totals = np.zeros(0, np.float64)
        self.prior = np.zeros(0, np.float64)

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        if identifiers.kind != "atomic":
            raise ValueError(f"markov accepts atomic identifiers, got {identifiers.kind!r}")
        n = self.n_items = data.n_items
        sources, targets = [], []
        for sequence in data.train:
            sequence = np.asarray(sequence, np.int64)
            if len(sequence) > 1:
                sources.append(sequence[:-1])
                targets.append(sequence[1:])
        if sources:
            pairs = np.concatenate(sources) * n + np.concatenate(targets)
        else:
            pairs = np.zeros(0, np.int64)
        pairs, counts = np.unique(pairs, return_counts=True)  # sorted by (source, target)
        source = pairs // n
        self.next_items = pairs % n
        self.counts = counts.astype(np.float64)
        self.row_start = np.searchsorted(source, np.arange(n + 1)).astype(np.int64)
        self.row_totals = np.bincount(source, weights=self.counts, minlength=n).astype(np.float64)
        popularity = np.asarray(data.train_counts, np.float64)
        # Scaled into [0, PRIOR_WEIGHT): never outweighs one observed transition.
        self.prior = PRIOR_WEIGHT * popularity / (popularity.max(initial=0.0) + 1.0)

    def transition_row(self, item: int | None) -> np.ndarray:
        """Scores of every item following ``item`` (``None``: no history, prior only)."""
        row = self.prior + self.smoothing
        total = 0.0
        if item is not None and 0 <= item < self.n_items:
            start, stop = self.row_start[item], self.row_start[item + 1]
            row[self.next_items[start:stop]] += self.counts[start:stop]
            total = float(self.row_totals[item])
        denominator = total + self.smoothing * self.n_items
        return row / denominator if denominator > 0 else row

    def score(self, batch: CaseBatch) -> np.ndarray:
        scores = np.empty((len(batch), self.n_items), np.float64)
        for case, history in enumerate(batch.histories):
            last = int(history[-1]) if len(history) else None
            scores[case] = self.transition_row(last)
        return scores

    def backbone(self) -> str:
        return f"1st-order Markov chain, {len(self.counts):,} transitions"


def build(params: dict[str, Any], seed: int) -> MarkovChain:
    """Recommender factory: ``params`` are resolved from :data:`PARAMS`; no randomness."""
    return MarkovChain(smoothing=params.get("smoothing", PARAMS[0].default))


@hookimpl
def register_recommenders(register: Callable[[RecommenderSpec], None]) -> None:
    register(
        RecommenderSpec(
            name="markov",
            factory=build,
            accepts=MarkovChain.accepts,
            description="first-order Markov chain: smoothed transitions from the last item",
            params=PARAMS,
        )
    )


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(
        MethodSpec(
            name="markov",
            tokenizer="atomic",
            recommender="markov",
            description="atomic ids + first-order Markov chain (example third-party plugin)",
            search_space=("recommender.smoothing",),
        )
    )
