"""Reader for RecBole atomic files (``<name>.inter`` + optional ``<name>.item``).

Every dataset RecBole users have already converted works here. Headers are
``field:type`` pairs separated by tabs; we need ``user_id``, ``item_id`` and
``timestamp`` in ``.inter``, and read every other ``.item`` column as item text.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from benchmark.data.dataset import RawDataset
from benchmark.errors import DatasetError

REQUIRED_INTER_FIELDS = ("user_id", "item_id", "timestamp")


def _read_table(path: Path) -> pd.DataFrame:
    """Read a tab-separated atomic file as strings, stripping ``:type`` from headers."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: the file is empty; it needs a header line and rows")
    try:
        table = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
            encoding="utf-8", encoding_errors="replace",
        )
    except pd.errors.ParserError as exc:
        raise DatasetError(f"{path}: cannot parse as tab-separated values: {exc}") from None
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: the file is empty; it needs a header line and rows") from None
    table.columns = [str(c).split(":", 1)[0] for c in table.columns]
    if table.empty:
        raise DatasetError(f"{path}: header only, no rows")
    return table


def read_atomic(
    directory: str | Path,
    name: str | None = None,
    rename: Mapping[str, str] | None = None,
) -> RawDataset:
    """Read ``directory/<name>.inter`` (and ``.item`` when present) into a RawDataset.

    ``name`` defaults to the directory's name. ``rename`` maps item-file columns to text
    field names (``{"movie_title": "title"}``). Errors name the file, line and field.
    """
    directory = Path(directory)
    name = name or directory.name
    inter_path = directory / f"{name}.inter"
    inter = _read_table(inter_path)
    for field in REQUIRED_INTER_FIELDS:
        if field not in inter.columns:
            raise DatasetError(
                f"{inter_path}: line 1: missing column '{field}'; the header needs "
                f"{', '.join(f + ':token' if f != 'timestamp' else f + ':float' for f in REQUIRED_INTER_FIELDS)}"
            )
    timestamps = pd.to_numeric(inter["timestamp"], errors="coerce")
    bad = timestamps.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DatasetError(
            f"{inter_path}: line {row + 2}: field 'timestamp' is {inter['timestamp'].iloc[row]!r}, "
            "not a number; write Unix seconds (or any increasing number)"
        )
    interactions = pd.DataFrame(
        {"user": inter["user_id"], "item": inter["item_id"], "timestamp": timestamps.astype(float)}
    )
    item_path = directory / f"{name}.item"
    items = pd.DataFrame(index=pd.Index([], dtype=str))
    fields: tuple[str, ...] = ()
    if item_path.exists():
        table = _read_table(item_path)
        if "item_id" not in table.columns:
            raise DatasetError(f"{item_path}: line 1: missing column 'item_id'")
        duplicated = table["item_id"].duplicated()
        if duplicated.any():
            row = int(duplicated.to_numpy().argmax())
            raise DatasetError(
                f"{item_path}: line {row + 2}: item_id {table['item_id'].iloc[row]!r} appears twice"
            )
        table = table.rename(columns=dict(rename or {})).set_index("item_id")
        items = table
        fields = tuple(table.columns)
        unknown = ~interactions["item"].isin(items.index)
        if unknown.any():
            row = int(unknown.to_numpy().argmax())
            raise DatasetError(
                f"{inter_path}: line {row + 2}: item_id {interactions['item'].iloc[row]!r} is not in "
                f"{item_path.name}; add it there or remove the interaction"
            )
    return RawDataset(
        name=name, interactions=interactions, items=items, text_fields=fields, source=str(inter_path)
    )
