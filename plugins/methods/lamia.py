"""LAMIA: the ``lamia`` palette tokenizer's codes on the ``llm`` recommender."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec
from benchmark.nn.causal_lm import SMALL_PROFILE as SMALL


@hookimpl
def register_methods(register) -> None:
    register(MethodSpec(
        name="lamia", version="8e5c8c87b595", tokenizer="lamia", recommender="llm",
        description="LAMIA (Liu et al., 2024): multi-aspect item palette codes (parallel, per-position "
        "k-means) on the LLM recommender, sequential + text-token alignment tasks",
        # The paper trains recommendation with text-token alignment, then recommendation alone;
        # here both are mixed for the whole run (one phase).
        defaults={"recommender.tasks": "seq,item2index,index2item"},
        search_space=("tokenizer.palette_size", "tokenizer.contrastive_weight", "recommender.learning_rate",
                      "recommender.dropout"),
        profiles={"small": {**SMALL, "tokenizer.model_path": "gemma3-270m", "tokenizer.lora_rank": 16,
                            "tokenizer.learning_rate": 5e-4}},
        paper="Learning Multi-Aspect Item Palette: A Semantic Tokenization Framework for Generative "
        "Recommendation, arXiv 2409.07276"))
