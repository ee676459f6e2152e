"""Any directory of RecBole atomic files: ``--dataset atomic:/path/to/dir``."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.components import DatasetSpec
from benchmark.data.atomic import read_atomic


@hookimpl
def register_datasets(register) -> None:
    register(
        DatasetSpec(
            name="atomic",
            load=lambda path: read_atomic(path),
            description="RecBole atomic files <dir>/<dir>.inter (+ .item): UTF-8, tab-separated, "
            "with user_id, item_id, timestamp",
            takes_argument=True,
            argument_help="directory DIR holding DIR.inter (named after the folder) and optionally DIR.item",
        )
    )
