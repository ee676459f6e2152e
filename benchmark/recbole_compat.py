"""Every pin and shim RecBole 1.2.1 needs on current numpy / scipy / torch, in one place.

RecBole 1.2.1 predates numpy 2, scipy 1.13 and torch 2.6. The project pins
``pandas<3`` and ``setuptools<82`` (pyproject.toml) and applies the shims below before
RecBole is imported. :func:`import_recbole` is the only way the project imports it.

| breakage                                   | shim                                          |
|--------------------------------------------|-----------------------------------------------|
| ``np.float_`` etc. removed in numpy 2       | restore the aliases                           |
| ``dok_matrix._update`` gone in scipy 1.13   | alias it to ``dok_matrix.update`` (LightGCN) |
| anomaly detection switched on globally by  | switch it off again after importing models    |
|   ``recbole.model...sine`` (20-30% slower)  |                                               |
| ``./log_tensorboard`` written on every run  | a no-op writer replaces ``get_tensorboard``   |
| ``torch.load`` weights-only default        | never used: best weights are kept in memory   |
"""

from __future__ import annotations

import logging
import warnings
from types import ModuleType

import numpy as np
import torch

NUMPY_ALIASES = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_, "bool8": np.bool_}


class _NoWriter:
    """Stands in for TensorBoard's SummaryWriter: RecBole has no switch to turn it off."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def add_hparams(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def apply_numpy_aliases() -> None:
    for name, value in NUMPY_ALIASES.items():
        if not hasattr(np, name):
            setattr(np, name, value)


def apply_scipy_alias() -> None:
    from scipy.sparse import dok_matrix

    if not hasattr(dok_matrix, "_update"):
        dok_matrix._update = dok_matrix.update


_recbole: ModuleType | None = None


def import_recbole() -> ModuleType:
    """Import RecBole with every shim applied (idempotent); returns the package."""
    global _recbole
    if _recbole is not None:
        return _recbole
    apply_numpy_aliases()
    apply_scipy_alias()
    import recbole
    import recbole.data  # noqa: F401
    import recbole.model.general_recommender  # noqa: F401
    import recbole.model.sequential_recommender  # noqa: F401
    import recbole.trainer.trainer as trainer_module
    import recbole.utils  # noqa: F401

    # Importing the sequential models turns anomaly detection on for the whole process.
    torch.autograd.set_detect_anomaly(False)
    trainer_module.get_tensorboard = lambda logger: _NoWriter()
    # RecBole logs through the root "recbole" loggers; keep them quiet unless asked.
    logging.getLogger("recbole").setLevel(logging.WARNING)
    # Its deprecation noise (pandas inplace fillna, torch.cuda.amp, sparse tensors) is
    # RecBole's, not the user's, and would bury our progress output.
    warnings.filterwarnings("ignore", module=r"recbole(\..*)?")
    _recbole = recbole
    return recbole
