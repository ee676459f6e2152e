"""Catalog coverage and cold-item exposure of the test top-10 lists."""

from __future__ import annotations

import numpy as np

from benchmark import hookimpl
from benchmark.components import EvaluationInput, EvaluatorSpec


def coverage(data: EvaluationInput) -> dict[str, float]:
    """Share of the catalog in any top-10 list; share of top-10 slots given to cold items."""
    top10 = data.rankings[:, :10]
    valid = top10[top10 >= 0]
    cold = data.data.train_counts == 0
    return {
        "catalog@10": float(len(np.unique(valid)) / data.data.n_items),
        "cold_share@10": float(cold[valid].mean()) if len(valid) else 0.0,
    }


@hookimpl
def register_evaluators(register) -> None:
    register(
        EvaluatorSpec(
            name="coverage",
            evaluate=coverage,
            description="catalog coverage of top-10 lists and share of slots given to cold items",
        )
    )
