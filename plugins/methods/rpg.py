"""RPG (Hou et al., KDD'25): long OPQ semantic IDs whose digits are generated in parallel.

The ``opq`` tokenizer makes each item M unordered digits (optimised product quantisation
of its text embedding); the ``rpg`` recommender predicts every digit of the next item at
every position of the history and scores each item by its digits' summed
log-probabilities, the whole catalogue exactly.
"""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec


@hookimpl
def register_methods(register) -> None:
    register(
        MethodSpec(
            name="rpg", version="1",
            tokenizer="opq",
            recommender="rpg",
            description="RPG (Hou et al., KDD'25): OPQ long semantic IDs, parallel digit prediction, exact scoring",
            search_space=("recommender.learning_rate", "recommender.dropout", "recommender.weight_decay",
                          "recommender.layers"),
            paper="Generating Long Semantic IDs in Parallel for Recommendation, KDD 2025",
        )
    )
