"""Most-popular items by training count: the floor every table needs."""

from __future__ import annotations

import numpy as np

from benchmark import hookimpl
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    Recommender,
    RecommenderSpec,
    TrainingData,
)


class Popularity(Recommender):
    accepts = frozenset({"atomic", "codes", "text", "token_set"})

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        self.counts = data.train_counts.astype(np.float32)

    def score(self, batch: CaseBatch) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(batch), len(self.counts)))

    def backbone(self) -> str:
        return "counts"


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="pop", version="8b846155d5a6", family="baseline",
            factory=lambda params, seed: Popularity(),
            accepts=Popularity.accepts,
            description="rank items by training interaction count",
        )
    )
