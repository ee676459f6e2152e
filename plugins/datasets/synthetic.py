"""Seeded synthetic data with planted sequential structure: ``synthetic``, ``synthetic:SEED``
or ``synthetic:SEED,USERS,ITEMS`` (a smaller or larger catalogue for smoke runs)."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import DatasetSpec
from benchmark.data.synthetic import make_synthetic
from benchmark.errors import DatasetError


def _load(argument: str | None):
    parts = argument.split(",") if argument else []
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if argument and (len(numbers) not in (1, 3) or any(n < 0 for n in numbers)
                     or (len(numbers) == 3 and (numbers[1] < 1 or numbers[2] < 8))):
        raise DatasetError(f"synthetic:{argument}: write synthetic:SEED or synthetic:SEED,USERS,ITEMS with "
                           "integers (at least 1 user and 8 items), e.g. synthetic:0,100,48")
    if len(numbers) == 3:
        return make_synthetic(seed=numbers[0], n_users=numbers[1], n_items=numbers[2])
    return make_synthetic(seed=numbers[0] if numbers else 0)


@hookimpl
def register_datasets(register) -> None:
    register(
        DatasetSpec(
            name="synthetic",
            load=_load,
            description="300 users, 120 items in 8 topic chains; planted sequential structure",
            takes_argument=True,
            argument_required=False,
            argument_help="integer seed (default 0), or SEED,USERS,ITEMS",
        )
    )
