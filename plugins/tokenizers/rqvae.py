"""TIGER's tokenizer ``rqvae``: semantic ids from item text by residual quantisation.

Rajput et al., "Recommender Systems with Generative Retrieval" (TIGER, NeurIPS'23), §3.1:
an RQ-VAE trained on item text embeddings, k-means codebook initialisation, commitment
weight 0.25 and a final level numbering items whose codes collide. The model, its
training and its parameters are in ``benchmark/nn/rqvae.py``, shared with LETTER and LC-Rec.
"""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import TokenizerSpec
from benchmark.nn.rqvae import PARAMS, RQVAETokenizer


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="rqvae", version="c57ea367ad0d",
            factory=lambda params, seed: RQVAETokenizer(params, seed),
            kind="codes",
            description="TIGER's RQ-VAE semantic ids from item text (+ a collision level)",
            params=PARAMS,
        )
    )
