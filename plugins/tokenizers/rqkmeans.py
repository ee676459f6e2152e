"""GRID's tokenizer ``rqkmeans``: semantic ids from item text by residual k-means.

Ju et al., "Generative Recommendation with Semantic IDs: A Practitioner's Handbook" (GRID,
Snap Research, 2025) puts RQ-KMeans beside TIGER's RQ-VAE as a way to make semantic ids:
the same residual quantisation of the item text embedding ``s``, with codebooks found by
k-means alone instead of a trained encoder, decoder and codebooks, so nothing is trained
by gradient and nothing can diverge or collapse:

- ``r_0 = s``; level ``l`` clusters every item's residual ``r_{l-1}`` into ``K`` groups
  with k-means (:func:`benchmark.nn.clustering.kmeans`, k-means++ seeding) and gives the
  item its group, ``c_l``;
- ``r_l = r_{l-1} - e_{l,c_l}``: the next level clusters what the chosen centroids so far
  leave unexplained, so the quantised embedding ``sum_l e_{l,c_l}`` comes closer to ``s``
  with every level (``info["residual_error"]``: mean ``||r_l||^2``, ``l = 0..L``).

GRID's default is 3 levels of 256 codes; as in TIGER (``rqvae``), items sharing all
three get a final level numbering them (:func:`benchmark.code_trie.disambiguate`), so
every identifier is unique. Only item content is read: every catalog item, cold ones
included, is clustered from its text embedding (the harness's text-embedding service,
``text_encoder``, as ``rqvae``), and the codes are cached by a hash of those embeddings,
the parameters and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark import hookimpl
from benchmark.cache import array_digest
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.errors import ParameterError
from benchmark.nn.clustering import kmeans
from benchmark.nn.rqvae import cached_codes, code_identifiers
from benchmark.params import Param

OWNER = "rqkmeans"

PARAMS = (
    Param("text_encoder", str, "minilm", "encoder plugin for item text (the same service as rqvae)"),
    Param("levels", int, 3, "residual k-means levels before the collision level (GRID: 3)", low=2, high=4,
          minimum=1),
    # tiny: 32 codes per level, as rqvae's tiny profile; cpu and paper: GRID's 256.
    Param("codebook_size", int, 256, "codes per level, the k of each level's k-means (GRID: 256)",
          choices=(16, 32, 64, 128, 256), profiles={"tiny": 32, "cpu": 256}, minimum=2),
    Param("kmeans_iterations", int, 100, "Lloyd iterations per level (fewer when the assignment stops changing)",
          profiles={"tiny": 20, "cpu": 100}, minimum=1),
)


@dataclass
class ResidualKMeans:
    """``codes`` (n, L); ``codebooks[l]`` (K, dim); ``residual_error[l]``: mean ``||r_l||^2``, l = 0..L."""

    codes: np.ndarray
    codebooks: list[np.ndarray]
    residual_error: list[float]


def residual_kmeans(
    embeddings: np.ndarray, levels: int, codebook_size: int, rng: np.random.Generator, iterations: int
) -> ResidualKMeans:
    """Cluster ``embeddings`` (n, dim), then each level's residuals, ``levels`` times."""
    residual = np.asarray(embeddings, np.float64).copy()
    codes, codebooks, errors = [], [], [float((residual**2).sum(1).mean())]
    for _ in range(levels):
        clustering = kmeans(residual, codebook_size, rng, iterations)
        # The labels k-means ends with: each centroid is the mean of exactly these members,
        # so every cluster's residuals average to zero.
        residual -= clustering.centroids[clustering.labels]
        codes.append(clustering.labels)
        codebooks.append(clustering.centroids)
        errors.append(float((residual**2).sum(1).mean()))
    return ResidualKMeans(np.column_stack(codes).astype(np.int64), codebooks, errors)


class RQKMeansTokenizer:
    """Content-only semantic ids: text embedding -> residual k-means codes -> collision level."""

    kind = "codes"

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        p = self.params
        if p["codebook_size"] > data.n_items:
            raise ParameterError(
                f"{OWNER}: parameter 'codebook_size' is {p['codebook_size']} but the catalog has {data.n_items} "
                f"items; give at most {data.n_items} codes per level"
            )
        embeddings = context.text_embeddings(p["text_encoder"])

        def compute() -> tuple[np.ndarray, dict]:
            result = residual_kmeans(embeddings, p["levels"], p["codebook_size"], np.random.default_rng(self.seed),
                                     p["kmeans_iterations"])
            return result.codes, {"residual_error": result.residual_error}

        codes, info = cached_codes(context.cache_dir, OWNER, [array_digest(embeddings), p, self.seed], compute,
                                   rows=data.n_items)
        return code_identifiers(codes, p["codebook_size"], info)


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name=OWNER, version="1",
            factory=lambda params, seed: RQKMeansTokenizer(params, seed),
            kind="codes",
            description="GRID's RQ-KMeans semantic ids from item text: k-means of the embeddings, then of each "
            "level's residuals, no gradient training (+ a collision level)",
            params=PARAMS,
        )
    )
