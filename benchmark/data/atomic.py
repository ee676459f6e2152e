"""Reader for RecBole atomic files (``<name>.inter`` + optional ``<name>.item``).

Every dataset RecBole users have already converted works here. Files are UTF-8 and
tab-separated; headers are ``field:type`` pairs. We need ``user_id``, ``item_id`` and
``timestamp`` in ``.inter``, and read every other ``.item`` column as item text.

Each line is checked before anything is built, and errors name file, line and field:
bytes that are not UTF-8 fail (no guessed encoding, no replaced characters, so two ids
never merge), as do a header with commas instead of tabs, a row with more or fewer fields
than the header, a column named twice in a header, an empty id, two ids that differ only by
whitespace around them (``" u1"`` and ``"u1"`` would be two users), and a timestamp that is
not a finite number.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.dataset import RawDataset, whitespace_twins
from benchmark.errors import DatasetError

REQUIRED_INTER_FIELDS = ("user_id", "item_id", "timestamp")
INTER_HEADER = "user_id:token<TAB>item_id:token<TAB>timestamp:float"
OTHER_DELIMITERS = (",", ";")
MAX_LISTED_FILES = 10


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: line {lineno}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not "
            f"UTF-8; save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.name}.utf8 "
            f"&& mv {path.name}.utf8 {path.name}"
        ) from None


def _read_table(path: Path) -> pd.DataFrame:
    """Read a tab-separated atomic file as strings, stripping ``:type`` from headers.

    The frame's index is each row's line number in the file (blank lines are skipped).
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    header: list[str] | None = None
    rows: list[list[str]] = []
    numbers: list[int] = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = _decode(raw, path, lineno).rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if header is None:
                header = [f.lstrip("\ufeff").split(":", 1)[0].strip() for f in fields]
                if len(fields) == 1 and any(d in line for d in OTHER_DELIMITERS):
                    raise DatasetError(
                        f"{path}: line {lineno}: the header holds no tab but "
                        f"{' and '.join(repr(d) for d in OTHER_DELIMITERS if d in line)}; atomic files "
                        f"are tab-separated: write it as e.g. {INTER_HEADER}, and the rows alike"
                    )
                _check_header(header, path, lineno)
                continue
            if len(fields) != len(header):
                hint = "; the line holds commas: separate fields by tabs" if "," in line and len(fields) == 1 else ""
                raise DatasetError(
                    f"{path}: line {lineno}: {len(fields)} field(s), expected {len(header)} as in the "
                    f"header ({', '.join(header)}){hint}; one tab between fields, none at the end"
                )
            rows.append(fields)
            numbers.append(lineno)
    if header is None:
        raise DatasetError(f"{path}: the file is empty; it needs a header line and rows")
    if not rows:
        raise DatasetError(f"{path}: header only, no rows")
    return pd.DataFrame(rows, columns=header, index=pd.Index(numbers, name="line"), dtype=str)


def _check_header(header: list[str], path: Path, lineno: int) -> None:
    """Every column appears once (pandas would read one of the two and warn, naming no file)."""
    for position, column in enumerate(header, start=1):
        if column in header[: position - 1]:
            first = header.index(column) + 1
            raise DatasetError(
                f"{path}: line {lineno}: column '{column}' appears twice in the header (columns {first} and "
                f"{position}); give each column once: rename or delete one of them"
            )


def _check_whitespace(table: pd.DataFrame, field: str, path: Path) -> None:
    """Refuse ids that differ only by whitespace around them (``" u1"`` and ``"u1"``).

    Ids are compared exactly, as RecBole does, so such a pair would silently become two users
    (or items), each with part of the interactions, and the k-core filter may drop both.
    Stripping would guess; the error names the line to mend instead.
    """
    twins = whitespace_twins(table[field])
    if twins is not None:
        line, twin = twins
        raise DatasetError(
            f"{path}: line {line}: field '{field}' is {table[field].loc[line]!r}, with whitespace around the id, "
            f"and line {twin} has {table[field].loc[twin]!r}; ids are compared exactly, so the two would be "
            f"different {'users' if field == 'user_id' else 'items'}: write every id without spaces around it"
        )


def _inter_path(directory: Path, name: str) -> Path:
    """``directory/<name>.inter``, or a DatasetError naming the files that are there."""
    inter_path = directory / f"{name}.inter"
    if inter_path.is_file():
        return inter_path
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such folder; atomic:DIR reads DIR/<folder name>.inter")
    present = sorted(p.name for p in directory.iterdir() if p.is_file())
    listed = ", ".join(present[:MAX_LISTED_FILES]) + (", ..." if len(present) > MAX_LISTED_FILES else "")
    inter_files = [f for f in present if f.endswith(".inter")]
    if len(inter_files) == 1:
        stem = inter_files[0].removesuffix(".inter")
        mend = (f"rename {stem}.inter to {name}.inter (and {stem}.item to {name}.item), or the folder "
                f"to {stem}")
    else:
        mend = f"put the interactions in {inter_path}"
    raise DatasetError(
        f"{directory}: no {name}.inter; the file must be named after the folder, and the folder holds "
        f"{listed or 'no files'}: {mend}"
    )


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
    inter_path = _inter_path(directory, name)
    inter = _read_table(inter_path)
    for field in REQUIRED_INTER_FIELDS:
        if field not in inter.columns:
            raise DatasetError(
                f"{inter_path}: line 1: missing column '{field}'; the header needs {INTER_HEADER}"
            )
    for field in ("user_id", "item_id"):
        empty = inter[field].str.strip() == ""
        if empty.any():
            raise DatasetError(
                f"{inter_path}: line {empty.idxmax()}: field '{field}' is empty; every interaction "
                "needs a user_id and an item_id: fill it in or delete the line"
            )
    for field in ("user_id", "item_id"):
        _check_whitespace(inter, field, inter_path)
    timestamps = pd.to_numeric(inter["timestamp"], errors="coerce")
    bad = ~np.isfinite(timestamps.to_numpy(np.float64, na_value=np.nan))
    if bad.any():
        line = inter.index[bad.argmax()]
        raise DatasetError(
            f"{inter_path}: line {line}: field 'timestamp' is {inter['timestamp'].loc[line]!r}, "
            "not a finite number; write Unix seconds (or any increasing number)"
        )
    interactions = pd.DataFrame(
        {"user": inter["user_id"], "item": inter["item_id"], "timestamp": timestamps.astype(float)}
    ).reset_index(drop=True)
    item_path = directory / f"{name}.item"
    items = pd.DataFrame(index=pd.Index([], dtype=str))
    fields: tuple[str, ...] = ()
    if item_path.exists():
        table = _read_table(item_path)
        if "item_id" not in table.columns:
            raise DatasetError(f"{item_path}: line 1: missing column 'item_id'")
        duplicated = table["item_id"].duplicated()
        if duplicated.any():
            line = duplicated.idxmax()
            raise DatasetError(
                f"{item_path}: line {line}: item_id {table['item_id'].loc[line]!r} appears twice"
            )
        _check_whitespace(table, "item_id", item_path)
        renamed = [rename.get(c, c) if rename else c for c in table.columns]
        clash = next((c for i, c in enumerate(renamed) if c in renamed[:i]), None)
        if clash is not None:
            sources = [c for c, r in zip(table.columns, renamed) if r == clash]
            raise DatasetError(
                f"{item_path}: line 1: columns {' and '.join(repr(c) for c in sources)} both become text field "
                f"'{clash}'; keep one of them"
            )
        table = table.rename(columns=dict(rename or {})).set_index("item_id")
        items = table
        fields = tuple(table.columns)
        unknown = ~inter["item_id"].isin(items.index)
        if unknown.any():
            line = unknown.idxmax()
            value = inter["item_id"].loc[line]
            near = items.index[items.index.str.strip() == value.strip()]
            hint = (f" (it holds {near[0]!r}, which differs only by whitespace: remove the spaces around ids)"
                    if len(near) else "")
            raise DatasetError(
                f"{inter_path}: line {line}: item_id {value!r} is not in "
                f"{item_path.name}{hint}; add it there or remove the interaction"
            )
    return RawDataset(
        name=name, interactions=interactions, items=items, text_fields=fields, source=str(inter_path),
        info={"item_file": str(item_path)},
    )
