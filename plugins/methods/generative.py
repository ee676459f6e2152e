"""The seq2seq generative family: TIGER, TIGER on RQ-KMeans ids, LETTER-TIGER and the three P5 variants.

Every one pairs an identifier tokenizer with the ``seq2seq`` recommender (a T5 that writes
the next item's identifier, ranked by constrained beam search), except ``tiger-decoder`` and
``rqkmeans-decoder``, which pair RQ-VAE / RQ-KMeans ids with the ``decoder`` recommender
(one causal transformer, GRID's decoder-only TIGER). The ``tiny`` profile is a
2-core CPU budget (see :mod:`plugins.recommenders.seq2seq`), not the papers' setting.
"""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import MethodSpec

TRAINING_SPACE = (
    "recommender.learning_rate",
    "recommender.dropout",
    "recommender.weight_decay",
)
# P5's instruction (Geng et al., RecSys'22, sequential-recommendation prompt family); the
# hashed user token stands for its "user_{id}".
P5_PROMPT = "Considering the user has interacted with items"


@hookimpl
def register_methods(register) -> None:
    register(
        MethodSpec(
            name="tiger", version="bb1fe627385d",
            tokenizer="rqvae",
            recommender="seq2seq",
            description="TIGER (Rajput et al., NeurIPS'23): RQ-VAE semantic ids + T5 from scratch",
            search_space=TRAINING_SPACE + ("recommender.layers", "tokenizer.codebook_size"),
            paper="Recommender Systems with Generative Retrieval, NeurIPS 2023",
        )
    )
    # GRID's decoder-only variant: the same ids, one causal transformer over the whole history.
    for name, tokenizer, ids in (("tiger-decoder", "rqvae", "RQ-VAE"), ("rqkmeans-decoder", "rqkmeans", "RQ-KMeans")):
        register(
            MethodSpec(
                name=name, version="1",
                tokenizer=tokenizer,
                recommender="decoder",
                description=f"decoder-only TIGER (GRID): {ids} semantic ids, the history's codes as one causal "
                "sequence, every item boundary trained",
                search_space=TRAINING_SPACE + ("recommender.layers", "tokenizer.codebook_size"),
                paper="Generative Recommendation with Semantic IDs: A Practitioner's Handbook (GRID), 2025",
            )
        )
    register(
        MethodSpec(
            name="tiger-rqkmeans", version="1",
            tokenizer="rqkmeans",
            recommender="seq2seq",
            description="TIGER with GRID's RQ-KMeans semantic ids (residual k-means of item text, no "
            "gradient training) + T5 from scratch",
            search_space=TRAINING_SPACE + ("recommender.layers", "tokenizer.codebook_size"),
            paper="Generative Recommendation with Semantic IDs: A Practitioner's Handbook (GRID), 2025",
        )
    )
    register(
        MethodSpec(
            name="letter-tiger", version="bb1fe627385d",
            tokenizer="letter",
            recommender="seq2seq",
            description="LETTER (Wang et al., CIKM'24) identifiers on TIGER, ranking-guided loss",
            # Paper Fig. 5: tau from 1.2 down to 0.7 helps, 0.6 hurts.
            defaults={"recommender.rank_temperature": 0.7},
            search_space=TRAINING_SPACE + ("recommender.rank_temperature", "tokenizer.alpha", "tokenizer.beta"),
            paper="Learnable Item Tokenization for Generative Recommendation, CIKM 2024",
        )
    )
    for variant, tokenizer, what in (
        ("tid", "tid", "title identifiers"),
        ("semid", "semid", "category-path identifiers"),
        ("cid", "cid", "collaborative spectral-cluster identifiers"),
    ):
        register(
            MethodSpec(
                name=f"p5-{variant}", version="bb1fe627385d",
                tokenizer=tokenizer,
                recommender="seq2seq",
                description=f"P5 (Geng et al., RecSys'22) with {what} (Hua et al., SIGIR-AP'23)",
                defaults={"recommender.prompt": P5_PROMPT},
                search_space=TRAINING_SPACE,
                paper="How to Index Item IDs for Recommendation Foundation Models, SIGIR-AP 2023",
            )
        )
