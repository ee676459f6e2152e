"""Cornac's next-item models as methods: ``cornac:<Model>`` (``cornac:SASRec``, ``cornac:TIGER``...).

Peers' implementations of the same papers, trained on our split, selected on our
validation and ranked by our evaluator (see :mod:`plugins.recommenders.cornac_bridge`).
Needs the optional extra: ``pip install 'genrec-bench[cornac]'``.
"""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec


@hookimpl
def register_methods(register) -> None:
    register(
        MethodSpec(
            name="cornac", version="1",
            tokenizer="atomic",
            recommender="cornac",
            description="a Cornac 3.0.1 next-item model: cornac:<Model>, Model one of SASRec, BERT4Rec, GRU4Rec, "
            "TIGER, LETTER, RPG (pip install 'genrec-bench[cornac]')",
            argument_param="recommender.model",
            search_space=("recommender.learning_rate",),
        )
    )
