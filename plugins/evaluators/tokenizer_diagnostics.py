"""Evaluator ``tokenizer``: codebook utilisation, code entropy, collisions and CF overlap.

For ``codes`` identifiers only (see :mod:`benchmark.evaluation.identifier_diagnostics`; LETTER,
CIKM'24, §6.2.2 and Table 4). The CF-neighbour overlap needs the harness's CF item
embeddings; it is reported only when they are already cached for this split (a LETTER
run fits them), so evaluation never trains a model.
"""

from __future__ import annotations

from collections.abc import Mapping

from benchmark import hookimpl
from benchmark.components import EvaluationInput, EvaluatorSpec
from benchmark.evaluation.identifier_diagnostics import diagnose


def tokenizer_diagnostics(data: EvaluationInput) -> Mapping[str, float]:
    if data.identifiers.kind != "codes":
        return {}
    # Only CF embeddings already cached (a LETTER run fits them): evaluation trains nothing.
    cf = data.context.cf_embeddings(train=False) if data.context is not None else None
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
