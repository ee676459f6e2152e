"""Amazon review dumps: ``--dataset amazon2014:Beauty``, ``--dataset amazon2018:All_Beauty``.

The argument is a category as spelled in the file names. Files are looked up in
``$GENREC_BENCH_DATA/amazon/<version>/`` (default ``~/.cache/genrec-bench/data``) and
downloaded there once when absent and the network answers. ``CATEGORY@DIRECTORY``
(``amazon2014:Beauty@/data/amazon``) reads the files from ``DIRECTORY`` instead.

``download`` finds and fetches the files, ``reader`` parses them; loading prints one line
saying how many item titles were cleaned of HTML or are missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from benchmark import hookimpl
from benchmark.components import DatasetSpec
from benchmark.data.dataset import RawDataset
from benchmark.errors import DatasetError
from plugins.datasets.amazon.download import default_directory
from plugins.datasets.amazon.reader import read_amazon, title_report


def load_amazon(version: str, argument: str | None) -> RawDataset:
    """Load ``CATEGORY`` or ``CATEGORY@DIRECTORY`` of the ``version`` dump."""
    category, _, directory = (argument or "").partition("@")
    category = category.strip()
    if not category:
        raise DatasetError(
            f"amazon{version} needs a category: write amazon{version}:Beauty "
            f"(or amazon{version}:Beauty@/dir/with/files)"
        )
    where = Path(directory.strip()).expanduser() if directory.strip() else default_directory(version)
    raw = read_amazon(where, category, version, allow_download=True)
    print(title_report(raw), file=sys.stderr, flush=True)
    return raw


def _loader(version: str) -> Callable[[str | None], RawDataset]:
    return lambda argument: load_amazon(version, argument)


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(
        DatasetSpec(
            name="amazon2014",
            load=_loader("2014"),
            description="Amazon reviews 2014 (McAuley), 5-core reviews_<Category>_5.json.gz "
            "+ meta_<Category>.json.gz; text: title, brand, category path, price",
            takes_argument=True,
            argument_help="Category name, e.g. Beauty; files from $GENREC_BENCH_DATA/amazon/2014 "
            "(downloaded when absent), or Beauty@/some/dir to read them from /some/dir",
        )
    )
    register(
        DatasetSpec(
            name="amazon2018",
            load=_loader("2018"),
            description="Amazon reviews 2018 (Ni et al.), 5-core <Category>_5.json.gz "
            "+ meta_<Category>.json.gz; text: title, brand, category path, price",
            takes_argument=True,
            argument_help="Category name, e.g. All_Beauty; files from "
            "$GENREC_BENCH_DATA/amazon/2018 (downloaded when absent), or "
            "All_Beauty@/some/dir to read them from /some/dir",
        )
    )
