"""What sequence recommenders trained by the engine share: the transformer size parameters,
the training parameters (the engine's plus ``prefixes_per_user``), the seeded per-epoch
sample of training prefixes and the per-epoch training windows of window-trained models.

The ``paper`` defaults are TIGER's transformer (6 heads of 64, d_model 128, MLP 1024,
dropout 0.1); ``tiny`` is the 2-core CPU budget of tests and smoke runs; ``cpu`` (the
boards) is a quarter of TIGER's width (4 heads of 16, d_model 64, MLP 256) trained to
convergence on a fresh sample of 20 training targets per user each epoch.
"""

from __future__ import annotations

import numpy as np
import torch

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


def training_windows(train: list[np.ndarray], span: int, per_user: int, seed: int, epoch: int,
                     owner: str) -> np.ndarray:
    """(user, end, supervised) rows of one epoch, shuffled, shape (n, 3): windows for models that
    learn every target of a window in one pass (a decoder-only recommender, SASRec's objective).

    A window holds items ``end - span .. end`` of the user's sequence (``span``: the history
    cap; fewer at the sequence's start) and supervises its last ``supervised`` items, each
    predicted from the window's items before it; the first item is context only.

    ``per_user`` = 0: the targets (positions 1..n-1) are cut into consecutive chunks of
    ``span`` from a seeded random shift each epoch, so every target is supervised exactly once
    per epoch, at a context length that changes between epochs (the chunk above the shift
    keeps a full window of context). ``per_user`` > 0: that many full windows per user (fewer
    for short sequences), the most recent one and the others' ends drawn afresh each epoch.
    """
    rng = np.random.default_rng([seed, epoch, 2])
    rows = []
    for user, sequence in enumerate(train):
        last = len(sequence) - 1
        if last < 1:
            continue
        if per_user:
            earlier = rng.choice(np.arange(1, last), min(per_user, last) - 1, replace=False)
            windows = [(end, min(span, end)) for end in (last, *sorted(earlier.tolist(), reverse=True))]
        else:
            shift = int(rng.integers(span))
            windows = [(end, min(span, end)) for end in range(last - shift, 0, -span)]
            if shift:
                windows.insert(0, (last, min(shift, last)))
        rows += [(user, end, supervised) for end, supervised in windows]
    if not rows:
        raise PluginError(f"{owner}: no user has two training items to learn from")
    rows_array = np.asarray(rows, np.int64)
    return rows_array[rng.permutation(len(rows_array))]


def window_count(train: list[np.ndarray], span: int, per_user: int) -> int:
    """The most windows one epoch of :func:`training_windows` yields (with ``per_user`` = 0 the
    shift moves it by one per user at most)."""
    targets = np.array([max(0, len(s) - 1) for s in train])
    if per_user:
        return int(np.minimum(targets, per_user).sum())
    return int((-(-targets // span) + (targets > 1)).sum())


def batches(rows, batch_size: int):
    """Consecutive batches of ``batch_size`` rows (the last one shorter)."""
    return (rows[start:start + batch_size] for start in range(0, len(rows), batch_size))


def right_aligned(sequences, width: int | None = None):
    """(B, width) item indices, each sequence's last ``width`` items right-aligned, -1 before
    them; ``width`` defaults to the longest sequence (at least 1)."""
    width = width or max(1, max((len(s) for s in sequences), default=0))
    index = np.full((len(sequences), width), -1, np.int64)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            index[row, width - len(sequence[-width:]):] = sequence[-width:]
    return torch.as_tensor(index)
