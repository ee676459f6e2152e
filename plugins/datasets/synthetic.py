"""Seeded synthetic data with planted sequential structure: ``synthetic`` or ``synthetic:SEED``."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import DatasetSpec
from benchmark.data.synthetic import make_synthetic
from benchmark.errors import DatasetError


def _load(argument: str | None):
    try:
        seed = int(argument) if argument else 0
    except ValueError:
        raise DatasetError(f"synthetic:{argument}: the argument is an integer seed") from None
    return make_synthetic(seed=seed)


@hookimpl
def register_datasets(register) -> None:
    register(
        DatasetSpec(
            name="synthetic",
            load=_load,
            description="300 users, 120 items in 8 topic chains; planted sequential structure",
            takes_argument=True,
            argument_required=False,
            argument_help="integer seed (default 0)",
        )
    )
