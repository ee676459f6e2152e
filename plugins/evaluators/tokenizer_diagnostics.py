"""Evaluator ``tokenizer``: codebook utilisation, code entropy, collisions and CF overlap.

For ``codes`` identifiers only (see :mod:`benchmark.evaluation.identifiers`; LETTER,
CIKM'24, §6.2.2 and Table 4). The CF-neighbour overlap needs SASRec item embeddings; it is
reported only when :func:`plugins.recommenders.recbole.cf_embeddings` already cached them
for this split (a LETTER run does), so evaluation never trains a model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from benchmark import hookimpl
from benchmark.cache import load_array
from benchmark.components import EvaluationInput, EvaluatorSpec
from benchmark.evaluation.identifiers import diagnose
from benchmark.params import resolve
from plugins.recommenders.recbole import PARAMS as RECBOLE_PARAMS
from plugins.recommenders.recbole import cf_cache_path


def cached_cf_embeddings(data: EvaluationInput) -> np.ndarray | None:
    """The CF embeddings ``cf_embeddings(data, context)`` would return, if cached; else None."""
    context = data.context
    if context is None:
        return None
    # The same parameters and seed as cf_embeddings' defaults, hence the same cache path.
    params = resolve(RECBOLE_PARAMS, context.profile, {"model": "SASRec", "loss_type": "CE"}, "recbole")
    return load_array(cf_cache_path(context.cache_dir, data.data, params, 0))


def tokenizer_diagnostics(data: EvaluationInput) -> Mapping[str, float]:
    if data.identifiers.kind != "codes":
        return {}
    cf = cached_cf_embeddings(data)
    warm = data.data.train_counts > 0 if cf is not None else None
    return diagnose(data.identifiers, cf, warm)


@hookimpl
def register_evaluators(register) -> None:
    register(
        EvaluatorSpec(
            name="tokenizer",
            evaluate=tokenizer_diagnostics,
            description="codes identifiers: utilisation and entropy per level, collisions, "
            "CF-neighbour code overlap (when CF embeddings are cached)",
        )
    )
