"""The shared k-means: planted clusters, seeds, the balanced variant and degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.nn.clustering import kmeans


def planted(n_per: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated blobs and each point's blob."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), n_per)
    return centres[truth] + 0.5 * rng.normal(size=(len(truth), 2)), truth


def test_finds_planted_clusters() -> None:
    points, truth = planted()
    result = kmeans(points, 3, np.random.default_rng(0))
    assert result.centroids.shape == (3, 2)
    for blob in range(3):
        assert len(np.unique(result.labels[truth == blob])) == 1
    assert len(np.unique(result.labels)) == 3


@pytest.mark.parametrize("balanced", [False, True])
def test_same_seed_same_clustering(balanced: bool) -> None:
    points = np.random.default_rng(1).normal(size=(50, 4))
    a = kmeans(points, 6, np.random.default_rng(5), balanced=balanced)
    b = kmeans(points, 6, np.random.default_rng(5), balanced=balanced)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)


def test_balanced_caps_every_cluster() -> None:
    points, _ = planted(n_per=10)
    points = np.vstack([points, np.zeros((20, 2))])  # one crowded blob
    labels = kmeans(points, 7, np.random.default_rng(0), balanced=True).labels
    assert np.bincount(labels, minlength=7).max() <= math.ceil(len(points) / 7)


def test_more_clusters_than_distinct_points_keeps_identical_points_together() -> None:
    points = np.array([[0.0, 0.0]] * 4 + [[1.0, 1.0]] * 3)
    result = kmeans(points, 5, np.random.default_rng(0))
    assert result.centroids.shape == (5, 2)
    assert len(np.unique(result.labels[:4])) == 1 and len(np.unique(result.labels[4:])) == 1
    assert result.labels[0] != result.labels[4]


def test_no_points_is_an_error() -> None:
    with pytest.raises(ValueError, match="0 points"):
        kmeans(np.zeros((0, 2)), 3, np.random.default_rng(0))
