"""Training helpers shared by recommenders: validation-based early stopping, the seeded
per-epoch sample of training prefixes, the warm-up + cosine schedule, device choice, and
the parameter declarations of a transformer trained that way (``TRANSFORMER_PARAMS``,
``TRAINING_PARAMS``: the ``paper`` defaults are TIGER's, ``tiny`` is the 2-core CPU budget)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.errors import ParameterError, PluginError
from benchmark.params import Param

TRANSFORMER_PARAMS = (
    Param("heads", int, 6, "attention heads", profiles={"tiny": 4}, minimum=1),
    Param("head_dim", int, 64, "width of each head", profiles={"tiny": 32}, minimum=8),
    Param("d_model", int, 128, "model width", minimum=16, choices=(64, 128, 256)),
    Param("d_ff", int, 1024, "feed-forward width", profiles={"tiny": 512}, minimum=16),
    Param("dropout", float, 0.1, "dropout rate", minimum=0.0, maximum=0.9, low=0.0, high=0.3),
)
TRAINING_PARAMS = (
    Param("learning_rate", float, 1e-3, "peak AdamW learning rate (linear warm-up, cosine decay)",
          profiles={"tiny": 3e-3}, minimum=0.0, low=5e-4, high=1e-2, log=True),
    Param("weight_decay", float, 0.01, "AdamW weight decay", minimum=0.0, low=1e-4, high=0.1, log=True),
    Param("warmup", float, 0.05, "share of the training steps spent warming up", minimum=0.0, maximum=1.0),
    Param("batch_size", int, 256, "training prefixes per step", minimum=1),
    Param("epochs", int, 200, "maximum training epochs", profiles={"tiny": 4}, minimum=1),
    Param("patience", int, 10, "epochs without validation NDCG@10 gain before stopping",
          profiles={"tiny": 2}, minimum=1),
    Param("prefixes_per_user", int, 0, "training targets per user and epoch (0: every prefix); "
          "half the most recent, half drawn from earlier ones, afresh each epoch", profiles={"tiny": 5}, minimum=0),
    Param("device", str, "auto", "auto (cuda when available), cpu or cuda"),
)


def check_device(params: dict[str, Any], owner: str) -> None:
    """The ``device`` parameter of :data:`TRAINING_PARAMS` names a known choice."""
    if params["device"] not in ("auto", "cpu", "cuda"):
        raise ParameterError(f"{owner}: parameter 'device' is {params['device']!r}; give auto, cpu or cuda")


class EarlyStopping:
    """Keep the best weights by a validation metric; stop after ``patience`` flat epochs.

    Best weights stay in memory (no ``torch.load`` round trip), so the checkpoint chosen
    is the one validation chose, never the last one.
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.best = -float("inf")
        self.best_epoch = -1
        self.epoch = -1
        self.state: dict | None = None

    def step(self, value: float, model: torch.nn.Module) -> bool:
        """Record one epoch's metric; return True when training should stop."""
        self.epoch += 1
        if value > self.best:
            self.best, self.best_epoch = value, self.epoch
            self.state = copy.deepcopy(model.state_dict())
        return self.epoch - self.best_epoch >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


def training_prefixes(train: list[np.ndarray], per_user: int, seed: int, epoch: int,
                      owner: str) -> tuple[np.ndarray, np.ndarray]:
    """(user, target position) pairs of one epoch, shuffled: every position >= 1 of every
    training sequence, or with ``per_user`` > 0 a seeded sample of that many per user (half
    the most recent positions, half drawn from the earlier ones, afresh each epoch)."""
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
    users_np, positions_np = np.concatenate(users), np.concatenate(positions)
    order = rng.permutation(len(users_np))
    return users_np[order], positions_np[order]


def prefix_count(train: list[np.ndarray], per_user: int) -> int:
    """Pairs one epoch of :func:`training_prefixes` yields (the same every epoch)."""
    lengths = np.array([max(0, len(s) - 1) for s in train])
    if per_user:
        lengths = np.minimum(lengths, per_user)
    return int(lengths.sum())


def steps_per_epoch(train: list[np.ndarray], per_user: int, batch_size: int) -> int:
    """Optimiser steps of one epoch of :func:`training_prefixes` (the same every epoch)."""
    return max(1, math.ceil(prefix_count(train, per_user) / batch_size))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_share: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_share`` of the steps, then cosine decay to zero."""
    warmup = max(1, int(warmup_share * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def pick_device(choice: str, context_device: str, owner: str) -> torch.device:
    """``auto`` (the fit context's device), ``cpu`` or ``cuda`` (refused without CUDA)."""
    if choice == "auto":
        return torch.device(context_device or "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"{owner}: device=cuda but no CUDA device is available; use auto or cpu")
    return torch.device(choice)


def train_epochs(model: torch.nn.Module, params: dict[str, Any], context, desc: str, steps: int,
                 epoch_batches: Callable[[int], Iterable[Any]], loss_of: Callable[[Any], torch.Tensor],
                 validate: Callable[[], dict[str, float]]) -> EarlyStopping:
    """The training loop of :data:`TRAINING_PARAMS`: AdamW on ``model``'s trainable
    parameters, warm-up + cosine over ``epochs`` x ``steps`` steps, gradients clipped at 1,
    a progress bar; after each epoch ``validate()`` (its metrics and the mean loss go to
    ``context.epoch_end``), early stopping on NDCG@10 with the best weights restored.

    ``epoch_batches(epoch)`` yields the epoch's batches, ``loss_of(batch)`` their loss.
    Returns the stopper (``best_epoch``, ``epoch``); the model is left in eval mode.
    """
    parameters = [x for x in model.parameters() if x.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=params["learning_rate"], weight_decay=params["weight_decay"])
    scheduler = warmup_cosine(optimizer, steps * params["epochs"], params["warmup"])
    stopper = EarlyStopping(params["patience"])
    bar = tqdm(total=steps * params["epochs"], desc=desc, unit="step", disable=not context.progress, leave=False)
    for epoch in range(params["epochs"]):
        model.train()
        losses = []
        for batch in epoch_batches(epoch):
            loss = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            bar.update(1)
        model.eval()
        metrics = {**validate(), "loss": float(np.mean(losses))}
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", ndcg10=f"{metrics['ndcg@10']:.4f}")
        context.epoch_end(epoch, metrics)
        if stopper.step(metrics["ndcg@10"], model):
            break
    bar.close()
    stopper.restore(model)
    model.eval()
    return stopper
