"""Training helpers shared by recommenders: validation-based early stopping."""

from __future__ import annotations

import copy

import torch


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
