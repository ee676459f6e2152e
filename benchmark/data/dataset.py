"""The two shapes a dataset takes: raw (as read from files) and prepared (preprocessed).

A dataset plugin returns a :class:`RawDataset`; :func:`prepare` applies the protocol
every method shares: k-core filter, chronological order, and random integer ids so that
id order carries no time information.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.errors import BenchmarkError, DatasetError

INTERACTION_COLUMNS = ("user", "item", "timestamp")
TEXT_TEMPLATE = "{field}: {value}"
TEXT_SEPARATOR = "; "


def item_text(fields: dict[str, str], order: tuple[str, ...] | None = None) -> str:
    """One item's text from its content fields: each non-empty field as ``"<field>: <value>"``,
    joined by ``"; "`` in ``order`` (the dataset's field order, title first), e.g.
    ``"title: Toy Story; year: 1995; genres: Animation Children's"``."""
    names = order or tuple(fields)
    parts = [TEXT_TEMPLATE.format(field=f, value=fields[f].strip()) for f in names if fields.get(f, "").strip()]
    return TEXT_SEPARATOR.join(parts)


def whitespace_twins(ids: pd.Series) -> tuple[object, object] | None:
    """The first id with whitespace around it that another id equals once stripped
    (``" u1"`` and ``"u1"``), as the index labels of both (the padded one first), or ``None``.

    Ids are compared exactly, so such a pair would silently be two users or items."""
    ids = ids.astype(str)
    stripped = ids.str.strip()
    if not (ids != stripped).any():
        return None
    first = ids.drop_duplicates()  # each distinct id at its first row
    keys = stripped.loc[first.index]
    clashing = keys.duplicated(keep=False)
    padded = clashing & (first != keys)
    if not padded.any():
        return None
    row = padded.idxmax()
    group = first[clashing & (keys == keys.loc[row])]
    exact = group[group == keys.loc[row]]
    twin = exact.index[0] if len(exact) else group.index[group.index != row][0]
    return row, twin


@dataclass
class RawDataset:
    """Interactions and item content exactly as a dataset plugin read them.

    ``interactions`` has columns ``user`` and ``item`` (strings, the dataset's own ids)
    and ``timestamp`` (float seconds). ``items`` is indexed by item id (string) with one
    text column per content field; ``text_fields`` lists them in template order.
    ``source`` names the files, so errors and leaderboards can point at them. ``info``
    holds the reader's notes on what it changed or found missing (e.g. titles cleaned).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    text_fields: tuple[str, ...] = ()
    source: str = ""
    info: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check columns, types and ids; raise :class:`DatasetError` naming the fault."""
        where = self.source or self.name
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        if missing:
            raise DatasetError(f"{where}: interactions lack column(s) {', '.join(missing)}")
        if self.interactions.empty:
            raise DatasetError(f"{where}: no interactions; the file is empty")
        ts = self.interactions["timestamp"]
        if not np.issubdtype(ts.dtype, np.number) or not np.isfinite(ts.to_numpy(np.float64, na_value=np.nan)).all():
            numbers = pd.to_numeric(ts, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            bad = ts.index[~np.isfinite(numbers)][0]
            raise DatasetError(
                f"{where}: row {bad}: timestamp {ts.loc[bad]!s} is not a finite number of seconds; "
                "write Unix seconds (or any increasing number)"
            )
        for column in ("user", "item"):
            values = self.interactions[column].astype(str)
            stripped = values.str.strip()
            empty = stripped == ""
            if empty.any():
                raise DatasetError(
                    f"{where}: row {empty.idxmax()}: field '{column}' is empty; every interaction "
                    "needs a user and an item id: fill it in or drop the row"
                )
            twins = whitespace_twins(values)
            if twins is not None:
                row, twin = twins
                raise DatasetError(
                    f"{where}: row {row}: {column} {values.loc[row]!r} has whitespace around it, and row {twin} "
                    f"has {values.loc[twin]!r}; ids are compared exactly, so the two would be different "
                    f"{column}s: strip the ids when reading"
                )
        if len(self.items):
            known = set(self.items.index)
            unknown = ~self.interactions["item"].isin(known)
            if unknown.any():
                row = unknown.idxmax()
                raise DatasetError(
                    f"{where}: row {row}: item {self.interactions['item'].loc[row]!r} is not in "
                    "the item file; add it there or drop the interaction"
                )


@dataclass(frozen=True)
class ItemCatalog:
    """The items and their content, without any interaction: what fitting may read of a dataset.

    ``item_ids[i]`` is item i's id in the dataset's own ids; ``item_text[i]`` maps content
    field -> text; ``text_fields`` lists the fields in template order (title first).
    """

    name: str
    item_ids: np.ndarray
    item_text: list[dict[str, str]]
    text_fields: tuple[str, ...]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def texts(self) -> list[str]:
        """Every item's text per :func:`item_text` (what text encoders embed)."""
        return [item_text(fields, self.text_fields) for fields in self.item_text]


@dataclass
class PreparedDataset:
    """A preprocessed dataset with dense integer ids.

    Users are ``0..n_users-1`` and items ``0..n_items-1`` (random order, seeded).
    ``sequences[u]`` holds user u's items in time order and ``timestamps[u]`` their
    times. ``item_text[i]`` maps content field -> text for item i. ``item_file`` names the
    file item text was read from (or would be, when absent), for errors; empty when the
    reader does not say (``RawDataset.info["item_file"]``).
    """

    name: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    sequences: list[np.ndarray]
    timestamps: list[np.ndarray]
    item_text: list[dict[str, str]]
    text_fields: tuple[str, ...]
    options: dict = field(default_factory=dict)
    item_file: str = ""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def catalog(self) -> ItemCatalog:
        return ItemCatalog(self.name, self.item_ids, self.item_text, self.text_fields)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    @property
    def density(self) -> float:
        return self.n_interactions / max(1, self.n_users * self.n_items)

    def digest(self) -> str:
        """Content hash of ids and sequences: identical digests mean identical data."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update("\x00".join(map(str, self.item_ids)).encode())
        h.update("\x00".join(map(str, self.user_ids)).encode())
        for seq, ts in zip(self.sequences, self.timestamps):
            h.update(seq.tobytes())
            h.update(ts.tobytes())
        return h.hexdigest()[:16]


def k_core(interactions: pd.DataFrame, k: int) -> pd.DataFrame:
    """Repeatedly drop users and items with fewer than ``k`` interactions."""
    if k <= 1:
        return interactions
    df = interactions
    while True:
        user_counts = df["user"].map(df["user"].value_counts())
        item_counts = df["item"].map(df["item"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return df
        df = df[keep]


def prepare(raw: RawDataset, k: int = 5, id_seed: int = 0) -> PreparedDataset:
    """Validate, dedupe, k-core filter, order by time and remap ids randomly.

    Duplicate (user, item) pairs keep their first occurrence. Ties in time keep file
    order (stable sort), so the result does not depend on the id shuffle.
    """
    if k < 1:
        raise BenchmarkError(
            f"--k-core {k}: the k-core must be at least 1 (1 keeps every interaction; the default is 5)"
        )
    raw.validate()
    df = raw.interactions.loc[:, list(INTERACTION_COLUMNS)].copy()
    df["user"] = df["user"].astype(str)
    df["item"] = df["item"].astype(str)
    df["order"] = np.arange(len(df))
    df = df.sort_values(["timestamp", "order"], kind="stable")
    df = df.drop_duplicates(["user", "item"], keep="first")
    df = k_core(df, k)
    if df.empty:
        raise DatasetError(
            f"{raw.source or raw.name}: nothing left after {k}-core filtering; lower --k-core"
        )
    rng = np.random.default_rng(id_seed)
    item_ids = np.array(sorted(df["item"].unique()), dtype=object)
    item_ids = item_ids[rng.permutation(len(item_ids))]
    user_ids = np.array(sorted(df["user"].unique()), dtype=object)
    user_ids = user_ids[rng.permutation(len(user_ids))]
    item_index = {item: i for i, item in enumerate(item_ids)}
    user_index = {user: u for u, user in enumerate(user_ids)}
    df["u"] = df["user"].map(user_index)
    df["i"] = df["item"].map(item_index)
    df = df.sort_values(["u", "timestamp", "order"], kind="stable")
    bounds = np.searchsorted(df["u"].to_numpy(), np.arange(len(user_ids) + 1))
    items = df["i"].to_numpy(np.int64)
    times = df["timestamp"].to_numpy(np.float64)
    sequences = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    timestamps = [times[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    fields = tuple(f for f in raw.text_fields if f in raw.items.columns)
    records = raw.items.loc[:, list(fields)].to_dict("index") if fields else {}
    item_text = [
        {f: _clean(records.get(item, {}).get(f)) for f in fields} for item in item_ids
    ]
    return PreparedDataset(
        name=raw.name,
        user_ids=user_ids,
        item_ids=item_ids,
        sequences=sequences,
        timestamps=timestamps,
        item_text=item_text,
        text_fields=fields,
        options={"k_core": k, "id_seed": id_seed},
        item_file=str(raw.info.get("item_file") or ""),
    )


def _clean(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)
