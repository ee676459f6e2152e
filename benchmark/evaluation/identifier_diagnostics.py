"""Diagnostics of ``codes`` identifiers: codebook use, code entropy, collisions, CF agreement.

LETTER (Wang et al., CIKM'24, ``papers/letter.txt`` §6.2.2 and §6.2.4) reports two of these
for code tokenizers: the utilisation of the first-level codebook (Figure 6) and the
code-sequence overlap of items that are nearest neighbours in CF space (Table 4). The
paper does not define its "overlap degree"; we use the shared-prefix length over the
number of semantic levels, because with residual codes a position only means the same
thing when the levels before it agree (two items sharing code 7 at level 2 but not at
level 1 are not similar).

Semantic levels are the levels a tokenizer learnt; a collision level appended by
:func:`benchmark.code_trie.disambiguate` only numbers items and is left out of
utilisation, entropy and overlap (``info["semantic_levels"]`` says how many levels are
semantic; without it every level is).
"""

from __future__ import annotations

import numpy as np

from benchmark.code_trie import codebook_utilisation, collision_rate
from benchmark.components import ItemIdentifiers


def code_entropy(codes: np.ndarray) -> list[float]:
    """Per level, the entropy in bits of the items' code distribution (log2 K when uniform over K codes)."""
    entropies = []
    for level in range(codes.shape[1]):
        _, counts = np.unique(codes[:, level], return_counts=True)
        share = counts / counts.sum()
        entropies.append(float(-(share * np.log2(share)).sum()))
    return entropies


def cf_neighbour_overlap(codes: np.ndarray, cf_embeddings: np.ndarray, warm_mask: np.ndarray,
                         chunk: int = 2048) -> float:
    """Mean over warm items of the shared code prefix with their CF nearest neighbour, over L.

    The neighbour is the other warm item of highest cosine similarity of CF embeddings;
    cold items (no trained CF embedding) are neither queries nor neighbours.
    """
    warm = np.flatnonzero(warm_mask)
    if len(warm) < 2:
        return float("nan")
    vectors = cf_embeddings[warm].astype(np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    neighbour = np.empty(len(warm), np.int64)
    for start in range(0, len(warm), chunk):
        similarity = vectors[start : start + chunk] @ vectors.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, start + rows] = -np.inf
        neighbour[start : start + chunk] = similarity.argmax(1)
    mine, theirs = codes[warm], codes[warm[neighbour]]
    # Length of the shared prefix: the count of leading positions before the first mismatch.
    prefix = np.cumprod(mine == theirs, axis=1).sum(1)
    return float((prefix / codes.shape[1]).mean())


def diagnose(
    identifiers: ItemIdentifiers,
    cf_embeddings: np.ndarray | None = None,
    warm_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Flat diagnostics of ``codes`` identifiers: ``utilisation_l1..``, ``entropy_l1..`` (bits),
    ``collision_rate_before`` (semantic levels), ``collision_rate_after`` (full identifier) and,
    given CF embeddings and the warm mask, ``cf_overlap``."""
    if identifiers.kind != "codes" or identifiers.codes is None:
        raise ValueError(f"diagnose needs 'codes' identifiers, got kind {identifiers.kind!r}")
    codes = np.asarray(identifiers.codes)
    levels = int(identifiers.info.get("semantic_levels", codes.shape[1]))
    semantic = codes[:, :levels]
    result: dict[str, float] = {}
    for level, value in enumerate(codebook_utilisation(semantic, identifiers.vocab_sizes), 1):
        result[f"utilisation_l{level}"] = value
    for level, value in enumerate(code_entropy(semantic), 1):
        result[f"entropy_l{level}"] = value
    result["collision_rate_before"] = collision_rate(semantic)
    result["collision_rate_after"] = collision_rate(codes)
    if cf_embeddings is not None and warm_mask is not None:
        result["cf_overlap"] = cf_neighbour_overlap(semantic, cf_embeddings, warm_mask)
    return result
