"""Readers for the Amazon review dumps: 2014 (McAuley et al.) and 2018 (Ni et al.).

Each version ships per category a 5-core review file and an item metadata file:

- 2014: ``reviews_<Category>_5.json.gz`` (JSON lines) and ``meta_<Category>.json.gz``,
  whose lines are Python dict literals (single quotes), not JSON;
- 2018: ``<Category>_5.json.gz`` and ``meta_<Category>.json.gz``, both JSON lines.

:func:`read_amazon` turns them into a :class:`~benchmark.data.dataset.RawDataset` with
text fields ``title``, ``brand``, ``category`` (the category path joined with " > ") and
``price``. Text is cleaned the same way in both dumps: HTML entities unescaped, markup
(``<span class="a-size-medium">Serum</span>``, scripts, styles) stripped, whitespace
collapsed; the dataset's ``info`` counts the titles cleaned and missing.
"""

from __future__ import annotations

import ast
import gzip
import html
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.data.dataset import RawDataset
from benchmark.errors import DatasetError
from plugins.datasets.amazon.download import check_version, ensure_files

TEXT_FIELDS = ("title", "brand", "category", "price")
CATEGORY_SEPARATOR = " > "
REVIEW_FIELDS = ("reviewerID", "asin", "unixReviewTime")

# Cheap look-ahead so metadata lines of items without reviews are skipped unparsed:
# the 2018 meta files hold every item of a category, most of them outside the 5-core.
_ASIN_RE = re.compile(r"""["']asin["']\s*:\s*["']([^"']*)["']""")
# Some 2018 meta rows carry page markup instead of a price; keep only price-like text.
_PRICE_RE = re.compile(r"^\$?\s?\d[\d,]*(\.\d+)?(\s*-\s*\$?\s?\d[\d,]*(\.\d+)?)?$")
# Markup in 2018 titles (<span class="a-size-medium">...</span>): scripts and styles go
# with their content, other tags and comments leave their text.
_SCRIPT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)


def read_amazon(
    directory: str | Path, category: str, version: str, allow_download: bool = False
) -> RawDataset:
    """Read one category of the 2014 or 2018 dump from ``directory``.

    Interactions keep file order with columns ``user``, ``item`` and ``timestamp``
    (``unixReviewTime`` as float seconds). Items are indexed by asin; items reviewed but
    absent from the meta file get empty text. ``info`` counts the reviewed items, the
    titles cleaned of markup or entities and the titles missing (absent or empty); see
    :func:`title_report`. Missing files are fetched only with ``allow_download`` (see
    :func:`~plugins.datasets.amazon.download.ensure_files`).
    """
    version = check_version(version)
    reviews_path, meta_path = ensure_files(directory, category, version, allow_download)
    interactions = read_reviews(reviews_path)
    reviewed = set(interactions["item"].unique())
    items = read_meta(meta_path, version, keep=reviewed)
    cleaned = int(items.attrs.get("titles_cleaned", 0))
    absent = sorted(reviewed - set(items.index))
    if absent:
        filler = pd.DataFrame("", index=pd.Index(absent, dtype=object), columns=list(TEXT_FIELDS))
        items = pd.concat([items, filler])
    items.index.name = "item"
    return RawDataset(
        name=f"amazon{version}-{category}",
        interactions=interactions,
        items=items,
        text_fields=TEXT_FIELDS,
        source=str(reviews_path),
        info={"meta_file": str(meta_path), "items": len(items), "titles_cleaned": cleaned,
              "titles_missing": int((items["title"] == "").sum())},
    )


def title_report(raw: RawDataset) -> str:
    """One line on the titles of :func:`read_amazon`'s dataset: how many were cleaned or missing."""
    info = raw.info
    return (f"{raw.name}: {info['items']} item titles, {info['titles_cleaned']} cleaned of HTML markup "
            f"or entities, {info['titles_missing']} missing (absent from or empty in "
            f"{Path(info['meta_file']).name})")


def read_reviews(path: str | Path) -> pd.DataFrame:
    """Read a 5-core review file (either version) into ``user``, ``item``, ``timestamp``."""
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    for lineno, line in _lines(path):
        record = _parse(line, path, lineno, literal_first=False)
        where = f"{path}: line {lineno}"
        for field in REVIEW_FIELDS:
            if field not in record or record[field] is None:
                raise DatasetError(
                    f"{where}: field '{field}' is missing; each review needs "
                    "reviewerID, asin and unixReviewTime"
                )
        users.append(_identifier(record, "reviewerID", where))
        items.append(_identifier(record, "asin", where))
        times.append(_seconds(record["unixReviewTime"], where))
    return pd.DataFrame(
        {
            "user": pd.Series(users, dtype=object),
            "item": pd.Series(items, dtype=object),
            "timestamp": pd.Series(times, dtype="float64"),
        }
    )


def read_meta(path: str | Path, version: str, keep: set[str] | None = None) -> pd.DataFrame:
    """Read an item metadata file into a frame of text fields indexed by asin.

    2014 lines are Python literals (``ast.literal_eval``, JSON as fallback), 2018 lines
    JSON (literals as fallback). With ``keep``, lines of other asins are skipped without
    being parsed. Repeated asins keep their first line. Text is cleaned by
    :func:`clean_text`; ``frame.attrs["titles_cleaned"]`` counts the titles it changed
    beyond whitespace.
    """
    path = Path(path)
    version = check_version(version)
    rows: dict[str, dict[str, str]] = {}
    cleaned = 0
    for lineno, line in _lines(path):
        if keep is not None:
            match = _ASIN_RE.search(line)
            if match and match.group(1) not in keep:
                continue
        record = _parse(line, path, lineno, literal_first=version == "2014")
        where = f"{path}: line {lineno}"
        if record.get("asin") is None:
            raise DatasetError(f"{where}: field 'asin' is missing; each item line needs an asin")
        asin = _identifier(record, "asin", where)
        if asin in rows or (keep is not None and asin not in keep):
            continue
        title = _text(record.get("title"), "title", where)
        if isinstance(record.get("title"), str) and title != " ".join(record["title"].split()):
            cleaned += 1
        rows[asin] = {
            "title": title,
            "brand": _text(record.get("brand"), "brand", where),
            "category": _category(record, version, where),
            "price": _price(record.get("price"), where),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(TEXT_FIELDS))
    frame.index = pd.Index(list(rows), dtype=object, name="item")
    frame.attrs["titles_cleaned"] = cleaned
    return frame


def clean_text(value: str) -> str:
    """Text as a reader would see it on the page: entities unescaped (``&amp;`` -> ``&``),
    markup stripped (scripts and styles with their content), whitespace collapsed."""
    text = html.unescape(value)
    text = _TAG_RE.sub(" ", _SCRIPT_RE.sub(" ", text))
    return " ".join(text.split())


# --------------------------------------------------------------------------- helpers

def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) of non-blank lines of a gzip or plain text file."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with open(path, "rb") as raw:
        magic = raw.read(2)
    # Accept files someone already gunzipped but kept under the .gz name.
    opener = gzip.open if magic == b"\x1f\x8b" else open
    lineno = 0
    seen = False
    try:
        with opener(path, "rb") as binary, io.TextIOWrapper(binary, encoding="utf-8") as text:
            for lineno, line in enumerate(text, start=1):
                line = line.strip()
                if line:
                    seen = True
                    yield lineno, line
    except (EOFError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"{path}: line {lineno + 1}: cannot read the file ({exc}); it is truncated or "
            "corrupt: delete it and download it again"
        ) from None
    if not seen:
        raise DatasetError(f"{path}: the file is empty; delete it and download it again")


def _parse(line: str, path: Path, lineno: int, literal_first: bool) -> dict[str, Any]:
    parsers = (_literal, json.loads) if literal_first else (json.loads, _literal)
    errors = []
    for parser in parsers:
        try:
            record = parser(line)
            break
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    else:
        raise DatasetError(
            f"{path}: line {lineno}: cannot parse the line as a JSON object or a Python dict "
            f"({errors[0]}); each line must hold one record: fix or delete the line"
        )
    if not isinstance(record, dict):
        raise DatasetError(
            f"{path}: line {lineno}: the line holds a {type(record).__name__}, not an object; "
            "each line must hold one record"
        )
    return record


def _literal(line: str) -> Any:
    return ast.literal_eval(line)


def _identifier(record: dict[str, Any], field: str, where: str) -> str:
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise DatasetError(f"{where}: field '{field}' is {value!r}; it must be a non-empty id")
    return str(value).strip()


def _seconds(value: Any, where: str) -> float:
    try:
        seconds = float(value if isinstance(value, (int, float)) else str(value).strip())
    except ValueError:
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds):
        raise DatasetError(
            f"{where}: field 'unixReviewTime' is {value!r}, not a finite number; it must hold Unix "
            "seconds"
        )
    return seconds


def _text(value: Any, field: str, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field '{field}' is a {type(value).__name__}; expected text")
    # The 2018 crawl keeps HTML entities (&amp;), markup and stray whitespace in names.
    return clean_text(value)


def _category(record: dict[str, Any], version: str, where: str) -> str:
    if version == "2014":
        field, value = "categories", record.get("categories")
        if value is None or value == []:
            return ""
        if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
            raise DatasetError(
                f"{where}: field 'categories' is {type(value).__name__}; the 2014 meta format "
                "needs a list of category paths (lists of strings)"
            )
        path = value[0]  # the first path is the item's primary category
    else:
        field, value = "category", record.get("category")
        if value is None:
            return ""
        if not isinstance(value, list):
            raise DatasetError(
                f"{where}: field 'category' is {type(value).__name__}; the 2018 meta format "
                "needs a list of strings"
            )
        path = value
    parts = [_text(part, field, where) for part in path]
    return CATEGORY_SEPARATOR.join(p for p in parts if p)


def _price(value: Any, where: str) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        return f"${value:.2f}"  # 2014 stores dollars as a number; match 2018's "$x.yz"
    text = _text(value, "price", where)
    return text if _PRICE_RE.match(text) else ""
