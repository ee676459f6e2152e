"""Uncertainty over test cases: bootstrap intervals and paired significance tests.

Both resample *test cases* (seeded), so an interval says how much a number would move
on another draw of users from the same population; with several seeds, each case's value
is first averaged over seeds.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 1000
SMALL_SUBSET = 100


def bootstrap_interval(
    values: np.ndarray, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values``; ``None`` when empty."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def paired_bootstrap_pvalue(
    a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> float | None:
    """Two-sided p-value that mean(a) == mean(b), resampling the same cases for both.

    The null distribution is the bootstrap distribution of the paired differences
    shifted to mean zero; the p-value is the share of resampled mean differences at
    least as far from zero as the observed one.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) == 0 or len(a) != len(b):
        return None
    diff = a - b
    observed = diff.mean()
    if np.all(diff == diff[0]):
        return 1.0 if observed == 0 else 0.0
    rng = np.random.default_rng(seed)
    resampled = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    centred = resampled - observed
    return float((np.abs(centred) >= abs(observed)).mean())
