"""What sequence recommenders trained by the engine share: the transformer size parameters,
the training parameters (the engine's plus ``prefixes_per_user``) and the seeded per-epoch
sample of training prefixes.

The ``paper`` defaults are TIGER's transformer (6 heads of 64, d_model 128, MLP 1024,
dropout 0.1); ``tiny`` is the 2-core CPU budget of tests and smoke runs; ``cpu`` (the
boards) is a quarter of TIGER's width (4 heads of 16, d_model 64, MLP 256) trained to
convergence on a fresh sample of 20 training targets per user each epoch.
"""

from __future__ import annotations

import numpy as np

from benchmark.errors import PluginError
from benchmark.nn.engine import ENGINE_PARAMS
from benchmark.params import Param

TRANSFORMER_PARAMS = (
    Param("heads", int, 6, "attention heads", profiles={"tiny": 4}, minimum=1),
    Param("head_dim", int, 64, "width of each head", profiles={"tiny": 32, "cpu": 16}, minimum=8),
    Param("d_model", int, 128, "model width", minimum=16, choices=(64, 128, 256), profiles={"cpu": 64}),
    Param("d_ff", int, 1024, "feed-forward width", profiles={"tiny": 512, "cpu": 256}, minimum=16),
    Param("dropout", float, 0.1, "dropout rate", minimum=0.0, maximum=0.9, low=0.0, high=0.3),
)
TRAINING_PARAMS = (
    *ENGINE_PARAMS,
    Param("prefixes_per_user", int, 0, "training targets per user and epoch (0: every prefix); "
          "half the most recent, half drawn from earlier ones, afresh each epoch", profiles={"tiny": 5, "cpu": 20},
          minimum=0),
)


def training_prefixes(train: list[np.ndarray], per_user: int, seed: int, epoch: int,
                      owner: str) -> np.ndarray:
    """(user, target position) rows of one epoch, shuffled, shape (n, 2): every position >= 1
    of every training sequence, or with ``per_user`` > 0 a seeded sample of that many per
    user (half the most recent positions, half drawn from the earlier ones, afresh each epoch)."""
    rng = np.random.default_rng([seed, epoch])
    users, positions = [], []
    for user, sequence in enumerate(train):
        n = len(sequence)
        if n < 2:
            continue
        candidates = np.arange(1, n)
        if per_user and len(candidates) > per_user:
            recent = per_user // 2
            older = rng.choice(candidates[: -recent or None], per_user - recent, replace=False)
            candidates = np.r_[older, candidates[len(candidates) - recent:]] if recent else older
        users.append(np.full(len(candidates), user))
        positions.append(candidates)
    if not users:
        raise PluginError(f"{owner}: no user has two training items to learn from")
    pairs = np.column_stack([np.concatenate(users), np.concatenate(positions)])
    return pairs[rng.permutation(len(pairs))]


def prefix_count(train: list[np.ndarray], per_user: int) -> int:
    """Rows one epoch of :func:`training_prefixes` yields (the same every epoch)."""
    lengths = np.array([max(0, len(s) - 1) for s in train])
    if per_user:
        lengths = np.minimum(lengths, per_user)
    return int(lengths.sum())


def batches(rows, batch_size: int):
    """Consecutive batches of ``batch_size`` rows (the last one shorter)."""
    return (rows[start:start + batch_size] for start in range(0, len(rows), batch_size))
