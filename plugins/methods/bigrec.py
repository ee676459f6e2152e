"""BIGRec on the ``bigrec`` recommender: item titles (the ``tid`` tokenizer) generated, then grounded."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec
from benchmark.nn.causal_lm import SMALL_PROFILE as SMALL


@hookimpl
def register_methods(register) -> None:
    register(MethodSpec(
        name="bigrec", version="9cb8d5129f73", tokenizer="tid", recommender="bigrec",
        description="BIGRec (Bao et al., 2023): the LLM writes the next title, grounded to items by L2 "
        "distance of its own embeddings",
        search_space=("recommender.learning_rate", "recommender.dropout", "recommender.weight_decay",
                      "recommender.popularity_weight"),
        profiles={"small": SMALL},
        paper="A Bi-Step Grounding Paradigm for Large Language Models in Recommendation Systems, 2023"))
