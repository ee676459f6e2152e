"""k-means, the one clustering routine tokenizers share.

P5-CID clusters spectral embeddings of the co-occurrence graph, the RQ-VAE tokenizers
initialise each codebook from the centroids of its residuals (TIGER), and LETTER splits
each codebook into clusters of equal size for its diversity loss; RQ-KMeans clusters the
residuals level by level and OPQ each rotated sub-space (warm-started from its previous
codebook). All of them call :func:`kmeans`: Lloyd's algorithm with k-means++ seeding (Arthur & Vassilvitskii, SODA'07),
optionally with every cluster capped at ``ceil(n / clusters)`` points, which is
constrained k-means (Bradley, Bennett & Demiriz, 2000): each centroid offers that many
slots and points take slots at the least total squared distance.

Everything random is drawn from the ``rng`` given, so the same points, settings and
seed give the same clustering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


@dataclass
class Clustering:
    """``labels[i]``: point i's cluster in ``0..clusters-1``; ``centroids``: (clusters, dim)."""

    labels: np.ndarray
    centroids: np.ndarray


def kmeans(
    points: np.ndarray, clusters: int, rng: np.random.Generator, iterations: int = 50, balanced: bool = False,
    initial: np.ndarray | None = None,
) -> Clustering:
    """Cluster ``points`` (n, dim) into ``clusters`` groups.

    Always returns ``clusters`` centroids. With fewer distinct points than clusters the
    extra centroids repeat chosen points and stay empty (a point ties with the first equal
    centroid, so identical points share a label). An emptied cluster's centroid moves to
    a random point, so codebooks initialised from it keep no unreachable entry.
    ``balanced`` caps every cluster at ``ceil(n / clusters)`` points. ``initial`` (clusters,
    dim) starts Lloyd's iterations from those centroids instead of k-means++ seeding (a warm
    start: OPQ refits its codebooks after each rotation, and from the previous centroids no
    step raises the total squared distance).
    """
    x = np.asarray(points, np.float64)
    n = len(x)
    if n == 0 or clusters < 1:
        raise ValueError(f"kmeans needs points and at least one cluster, got {n} points and clusters={clusters}")
    if initial is None:
        centroids = seed_centroids(x, clusters, rng)
    else:
        centroids = np.array(initial, np.float64)
        if centroids.shape != (clusters, x.shape[1]):
            raise ValueError(f"kmeans: initial centroids have shape {centroids.shape}, "
                             f"expected ({clusters}, {x.shape[1]})")
    capacity = math.ceil(n / clusters)
    labels = np.full(n, -1)
    for _ in range(iterations):
        distances = cdist(x, centroids, "sqeuclidean")
        new = balanced_assignment(distances, capacity) if balanced else distances.argmin(1)
        if (new == labels).all():
            break
        labels = new
        for cluster in range(clusters):
            members = labels == cluster
            centroids[cluster] = x[members].mean(0) if members.any() else x[rng.integers(n)]
    return Clustering(labels=labels, centroids=centroids)


def seed_centroids(x: np.ndarray, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each next centroid is a point drawn with probability ~ squared distance."""
    n = len(x)
    chosen = [int(rng.integers(n))]
    nearest = cdist(x, x[chosen], "sqeuclidean").ravel()
    while len(chosen) < clusters:
        total = nearest.sum()
        if total <= 0:
            # Every point coincides with a centroid: the rest repeat points and stay empty.
            chosen.extend(rng.integers(n, size=clusters - len(chosen)).tolist())
            break
        chosen.append(int(rng.choice(n, p=nearest / total)))
        nearest = np.minimum(nearest, cdist(x, x[chosen[-1:]], "sqeuclidean").ravel())
    return x[chosen].copy()


def balanced_assignment(distances: np.ndarray, capacity: int) -> np.ndarray:
    """Labels minimising the total distance with at most ``capacity`` points per cluster."""
    n, clusters = distances.shape
    rows, slots = linear_sum_assignment(np.repeat(distances, capacity, axis=1))
    labels = np.empty(n, np.int64)
    labels[rows] = slots // capacity
    return labels
