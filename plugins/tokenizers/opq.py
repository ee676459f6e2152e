"""RPG's tokenizer ``opq``: long semantic ids of unordered digits by optimised product quantisation.

Hou et al., "Generating Long Semantic IDs in Parallel for Recommendation" (RPG, KDD'25)
gives each item M digits that a recommender predicts in parallel, one per sub-space of the
item's text embedding; RPG makes them with faiss's ``OPQ{M},IVF1,PQ{M}x8`` (M = 32 digits
of 256 codes) on whitened PCA of sentence-T5 embeddings (768 -> 128 dimensions), trained on
the items of the training sequences and applied to every item. This file does the same in
numpy (faiss is not a dependency):

1. every catalog item's text embedding (the harness's service, ``text_encoder``) is
   projected on its first ``pca_dims`` principal components, whitened (unit variance per
   component), then centred on the training items (faiss's ``IVF1``: one coarse centroid,
   the mean, whose residual PQ encodes);
2. OPQ (Ge, He, Ke & Sun, "Optimized Product Quantization", CVPR'13, the non-parametric
   version) minimises ``sum_i ||x_i R - y_i||^2`` over an orthogonal rotation ``R`` and
   product-quantised ``y_i`` (each of the M sub-vectors of ``x_i R`` replaced by the nearest
   of its sub-space's K centroids), alternating two steps that never raise that error:
   k-means in each sub-space of ``X R`` (:func:`benchmark.nn.clustering.kmeans`, warm-started
   from the previous codebook), then ``R = U V^T`` from the SVD ``X^T Y = U S V^T``
   (orthogonal Procrustes: the rotation taking ``X`` closest to its reconstruction ``Y``).
   The first pass is plain PQ (``R`` = identity; faiss starts from a random rotation), so OPQ
   ends no worse than PQ. faiss's schedule: 50 rotation updates, 40 Lloyd iterations for the
   first PQ and 4 after each update;
3. digit ``m`` of an item is the nearest centroid of its ``m``-th rotated sub-vector.

The digits are unordered: ``ItemIdentifiers`` of kind ``codes`` with ``vocab_sizes`` = (K,) * M
and ``info["parallel_digits"]`` = True (``info["digits"]`` = M), which any ``codes``
recommender reads. RPG needs no collision level, so none is added; the collision rate is in
``info``. A recommender decoding through a prefix trie needs unique identifiers:
``collision_level=true`` appends TIGER's level numbering items that share all digits.

M must divide the quantised width (``pca_dims``, or the encoder's width with ``pca_dims=0``);
``pad=true`` instead pads the vectors with zero columns up to the next multiple of M (the
rotation then spreads them over the padded width). Nothing is projected away but by PCA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from benchmark import hookimpl
from benchmark.cache import array_digest
from benchmark.code_trie import codebook_utilisation, collision_rate, disambiguate
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.errors import ParameterError
from benchmark.nn.clustering import kmeans
from benchmark.nn.rqvae import cached_codes, code_identifiers
from benchmark.params import Param

OWNER = "opq"
TRAIN_ITEMS = ("warm", "all")

PARAMS = (
    Param("text_encoder", str, "minilm", "encoder plugin for item text (RPG: sentence-T5, 768-d)"),
    # cpu: 16 digits, half RPG's 32: ml-100k's ~1,350 items need far fewer than 256^32 ids,
    # and 8 dimensions per sub-space (128 / 16) keep each k-means above a handful of dimensions.
    Param("digits", int, 32, "M: product-quantisation sub-spaces, one unordered code digit each (RPG: 32)",
          profiles={"tiny": 4, "cpu": 16}, minimum=1),
    Param("codebook_size", int, 256, "K: codes per digit (RPG: 256)", choices=(16, 32, 64, 128, 256),
          profiles={"tiny": 16, "cpu": 256}, minimum=2),
    Param("pca_dims", int, 128, "whitened PCA width before quantisation (RPG: 128); 0 keeps the encoder's width",
          profiles={"tiny": 16, "cpu": 128}, minimum=0),
    Param("pad", bool, False, "zero-pad the vectors to a multiple of digits when digits does not divide their "
          "width (otherwise that is an error)"),
    Param("train_items", str, "warm", "items OPQ is trained on: warm (items of training sequences, RPG) or all; "
          "every item is encoded", options=TRAIN_ITEMS),
    Param("opq_iterations", int, 50, "rotation updates after the first PQ (faiss: 50; 0 = plain PQ)",
          profiles={"tiny": 10, "cpu": 50}, minimum=0),
    Param("first_kmeans_iterations", int, 40, "Lloyd iterations per sub-space of the first PQ (faiss: 40)",
          minimum=1),
    Param("kmeans_iterations", int, 4, "Lloyd iterations per sub-space after each rotation update (faiss: 4)",
          minimum=1),
    Param("collision_level", bool, False, "append a level numbering items that share all digits (for "
          "recommenders decoding through a prefix trie; RPG needs none)"),
)


def check_params(params: dict[str, Any]) -> None:
    """Faults a declaration cannot express, found at resolve time."""
    width = params["pca_dims"]
    if width and width % params["digits"] and not params["pad"]:
        raise ParameterError(
            f"{OWNER}: parameter 'digits' is {params['digits']}, which does not divide pca_dims={width}; choose a "
            f"divisor of {width}, or set pad=true to zero-pad the vectors to a multiple of {params['digits']}"
        )


# --------------------------------------------------------------------------- OPQ


@dataclass
class ProductQuantiser:
    """``rotation`` (d, d) orthogonal; ``codebooks`` (M, K, d / M); ``errors``: the mean squared
    reconstruction error after each pass (the first: plain PQ, at ``R`` = identity)."""

    rotation: np.ndarray
    codebooks: np.ndarray
    errors: list[float]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Digits (n, M): per sub-space, the nearest centroid of the rotated sub-vector."""
        rotated = np.asarray(x, np.float64) @ self.rotation
        width = self.codebooks.shape[2]
        return np.column_stack([
            cdist(rotated[:, m * width : (m + 1) * width], codebook, "sqeuclidean").argmin(1)
            for m, codebook in enumerate(self.codebooks)
        ]).astype(np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The rotated-space reconstruction (n, d) of ``codes``."""
        return np.concatenate([codebook[codes[:, m]] for m, codebook in enumerate(self.codebooks)], axis=1)


def optimised_product_quantisation(
    x: np.ndarray, digits: int, codebook_size: int, rng: np.random.Generator, iterations: int = 50,
    first_kmeans_iterations: int = 40, kmeans_iterations: int = 4,
) -> ProductQuantiser:
    """OPQ of ``x`` (n, d), d divisible by ``digits``; ``iterations=0`` is plain PQ."""
    x = np.asarray(x, np.float64)
    n, width = x.shape
    if width % digits:
        raise ValueError(f"{digits} sub-spaces do not divide the width {width}")
    sub = width // digits
    rotation = np.eye(width)
    codebooks: np.ndarray | None = None
    errors: list[float] = []
    reconstruction = np.zeros_like(x)
    for step in range(iterations + 1):
        if step:
            # Orthogonal Procrustes: argmin_R ||X R - Y|| over orthogonal R is U V^T, X^T Y = U S V^T.
            u, _, vt = np.linalg.svd(x.T @ reconstruction)
            rotation = u @ vt
        rotated = x @ rotation
        codebooks = np.stack([
            kmeans(rotated[:, m * sub : (m + 1) * sub], codebook_size, rng,
                   first_kmeans_iterations if codebooks is None else kmeans_iterations,
                   initial=None if codebooks is None else codebooks[m]).centroids
            for m in range(digits)
        ])
        quantiser = ProductQuantiser(rotation, codebooks, errors)
        reconstruction = quantiser.decode(quantiser.encode(x))
        errors.append(float(((rotated - reconstruction) ** 2).sum(1).mean()))
    return ProductQuantiser(rotation, codebooks, errors)


def whitened_pca(x: np.ndarray, dims: int) -> np.ndarray:
    """``x`` (n, d) on its first ``dims`` principal components, each scaled to unit variance.

    Component signs are fixed (largest loading positive), so the result does not depend on
    the SVD routine's sign choices.
    """
    centred = np.asarray(x, np.float64) - np.mean(x, axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:dims] * np.sign(vt[np.arange(dims), np.abs(vt[:dims]).argmax(1)])[:, None]
    scale = singular[:dims] / np.sqrt(max(len(x) - 1, 1))
    return (centred @ vt.T) / np.where(scale > 1e-12, scale, 1.0)


# --------------------------------------------------------------------------- tokenizer


class OPQTokenizer:
    """Content-only parallel digits: text embedding -> whitened PCA -> OPQ codes."""

    kind = "codes"

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        p = self.params
        train = data.train_counts > 0 if p["train_items"] == "warm" else np.ones(data.n_items, bool)
        if p["codebook_size"] > train.sum():
            raise ParameterError(
                f"{OWNER}: parameter 'codebook_size' is {p['codebook_size']} but OPQ trains on {int(train.sum())} "
                f"{p['train_items']} items; give at most {int(train.sum())} codes per digit"
            )
        if p["pca_dims"] >= data.n_items:
            raise ParameterError(
                f"{OWNER}: parameter 'pca_dims' is {p['pca_dims']} but {data.n_items} items span at most "
                f"{data.n_items - 1} dimensions; give a smaller pca_dims (or 0 to keep the encoder's width)"
            )
        embeddings = context.text_embeddings(p["text_encoder"])
        vectors = self.vectors(embeddings)
        # collision_level does not change the digits: it stays out of the cache key.
        key = [array_digest(embeddings), array_digest(train), {k: v for k, v in p.items() if k != "collision_level"},
               self.seed]

        def compute() -> tuple[np.ndarray, dict]:
            x = vectors - vectors[train].mean(0)
            quantiser = optimised_product_quantisation(
                x[train], p["digits"], p["codebook_size"], np.random.default_rng(self.seed), p["opq_iterations"],
                p["first_kmeans_iterations"], p["kmeans_iterations"])
            total = float((x[train] ** 2).sum(1).mean())
            info = {"width": int(x.shape[1]), "train_items": int(train.sum()),
                    "quantisation_error": {"pq": quantiser.errors[0], "opq": quantiser.errors[-1]},
                    "relative_error": quantiser.errors[-1] / total if total > 0 else 0.0}
            return quantiser.encode(x), info

        codes, info = cached_codes(context.cache_dir, OWNER, key, compute, rows=data.n_items)
        return digit_identifiers(codes, p["codebook_size"], info, p["collision_level"])

    def vectors(self, embeddings: np.ndarray) -> np.ndarray:
        """What OPQ quantises: the whitened PCA (or the embeddings), zero-padded when asked."""
        p = self.params
        width = embeddings.shape[1]
        if p["pca_dims"] > width:
            raise ParameterError(f"{OWNER}: parameter 'pca_dims' is {p['pca_dims']} but encoder "
                                 f"{p['text_encoder']!r} gives {width}-wide vectors; give at most {width}")
        vectors = whitened_pca(embeddings, p["pca_dims"]) if p["pca_dims"] else np.asarray(embeddings, np.float64)
        missing = -vectors.shape[1] % p["digits"]
        if missing and not p["pad"]:
            raise ParameterError(
                f"{OWNER}: parameter 'digits' is {p['digits']}, which does not divide the {vectors.shape[1]}-wide "
                f"vectors of encoder {p['text_encoder']!r}; choose a divisor, set pca_dims to a multiple of "
                f"{p['digits']}, or set pad=true"
            )
        return np.pad(vectors, ((0, 0), (0, missing)))


def digit_identifiers(codes: np.ndarray, codebook_size: int, info: dict[str, Any],
                      collision_level: bool) -> ItemIdentifiers:
    """``codes`` identifiers of M parallel digits, optionally followed by a collision level."""
    digits = int(codes.shape[1])
    info = {**info, "parallel_digits": True, "digits": digits}
    if collision_level:
        return code_identifiers(codes, codebook_size, info)
    info.update(semantic_levels=digits, collisions=disambiguate(codes)[1], collision_rate=collision_rate(codes),
                utilisation=codebook_utilisation(codes, (codebook_size,) * digits))
    return ItemIdentifiers(kind="codes", n_items=len(codes), codes=codes, vocab_sizes=(codebook_size,) * digits,
                           info=info)


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name=OWNER, version="1",
            factory=lambda params, seed: OPQTokenizer(params, seed),
            kind="codes",
            description="RPG's long semantic ids: M unordered digits from optimised product quantisation "
            "(rotation + per-sub-space k-means) of whitened PCA of item text; no collision level",
            params=PARAMS,
            validate=check_params,
        )
    )
