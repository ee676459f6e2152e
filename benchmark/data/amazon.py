"""Readers for the Amazon review dumps: 2014 (McAuley et al.) and 2018 (Ni et al.).

Each version ships per category a 5-core review file and an item metadata file:

- 2014: ``reviews_<Category>_5.json.gz`` (JSON lines) and ``meta_<Category>.json.gz``,
  whose lines are Python dict literals (single quotes), not JSON;
- 2018: ``<Category>_5.json.gz`` and ``meta_<Category>.json.gz``, both JSON lines.

:func:`read_amazon` turns them into a :class:`~benchmark.data.dataset.RawDataset` with
text fields ``title``, ``brand``, ``category`` (the category path joined with " > ") and
``price``. :func:`ensure_files` finds the files in ``$GENREC_BENCH_DATA/amazon/<version>``
and, when they are absent and the network answers, downloads them once (``.part`` file,
progress bar, sha256 check) so later runs read the cache.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import html
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import pandas as pd
from tqdm import tqdm

from benchmark.data.dataset import RawDataset
from benchmark.errors import DatasetError

VERSIONS = ("2014", "2018")
TEXT_FIELDS = ("title", "brand", "category", "price")
DATA_ENV = "GENREC_BENCH_DATA"
DEFAULT_DATA_ROOT = "~/.cache/genrec-bench/data"
CONNECT_TIMEOUT_S = 10.0
CHUNK_BYTES = 1 << 20
CATEGORY_SEPARATOR = " > "

_URL_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
_URL_2018_REVIEWS = "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/"
_URL_2018_META = "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/"

# Categories with a 5-core file; only used to suggest names when a download 404s.
KNOWN_CATEGORIES = {
    "2014": (
        "Amazon_Instant_Video", "Apps_for_Android", "Automotive", "Baby", "Beauty", "Books",
        "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry",
        "Digital_Music", "Electronics", "Grocery_and_Gourmet_Food", "Health_and_Personal_Care",
        "Home_and_Kitchen", "Kindle_Store", "Movies_and_TV", "Musical_Instruments",
        "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Sports_and_Outdoors",
        "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
    ),
    "2018": (
        "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
        "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry",
        "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food",
        "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty",
        "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products",
        "Patio_Lawn_and_Garden", "Pet_Supplies", "Prime_Pantry", "Software",
        "Sports_and_Outdoors", "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
    ),
}

# sha256 of published files, by file name. Files not listed here get their digest
# recorded in a ``<file>.sha256`` sidecar at download time, checked on every later use.
KNOWN_SHA256: dict[str, str] = {}

REVIEW_FIELDS = ("reviewerID", "asin", "unixReviewTime")

# Cheap look-ahead so metadata lines of items without reviews are skipped unparsed:
# the 2018 meta files hold every item of a category, most of them outside the 5-core.
_ASIN_RE = re.compile(r"""["']asin["']\s*:\s*["']([^"']*)["']""")
# Some 2018 meta rows carry page markup instead of a price; keep only price-like text.
_PRICE_RE = re.compile(r"^\$?\s?\d[\d,]*(\.\d+)?(\s*-\s*\$?\s?\d[\d,]*(\.\d+)?)?$")


# --------------------------------------------------------------------------- files


class NetworkUnreachable(DatasetError):
    """The download server did not answer (no network, DNS failure, timeout)."""


def file_names(category: str, version: str) -> tuple[str, str]:
    """The (reviews, meta) file names of ``category`` in dump ``version``."""
    version = _check_version(version)
    _check_category(category)
    if version == "2014":
        return f"reviews_{category}_5.json.gz", f"meta_{category}.json.gz"
    return f"{category}_5.json.gz", f"meta_{category}.json.gz"


def file_urls(category: str, version: str) -> tuple[str, str]:
    """The public (reviews, meta) download addresses of ``category`` in ``version``."""
    reviews, meta = file_names(category, version)
    if _check_version(version) == "2014":
        return _URL_2014 + reviews, _URL_2014 + meta
    return _URL_2018_REVIEWS + reviews, _URL_2018_META + meta


def default_directory(version: str) -> Path:
    """``$GENREC_BENCH_DATA/amazon/<version>`` (``~/.cache/genrec-bench/data`` by default)."""
    root = os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser() / "amazon" / _check_version(version)


def ensure_files(
    directory: str | Path, category: str, version: str, allow_download: bool = True
) -> tuple[Path, Path]:
    """Return the (reviews, meta) paths in ``directory``, downloading absent ones.

    Present files are used as they are (checked against a known or recorded sha256).
    Absent files are downloaded when ``allow_download`` is true and the server answers;
    otherwise :class:`DatasetError` says which file to put where and where to get it.
    """
    directory = Path(directory).expanduser()
    names = file_names(category, version)
    urls = file_urls(category, version)
    targets = tuple(directory / name for name in names)
    for target in targets:
        if target.exists():
            verify_checksum(target)
    missing = [(url, target) for url, target in zip(urls, targets) if not target.exists()]
    if missing and not allow_download:
        raise DatasetError(_missing_message(missing, "downloading is switched off"))
    for i, (url, target) in enumerate(missing):
        try:
            download(url, target, KNOWN_SHA256.get(target.name))
        except NetworkUnreachable as exc:
            raise DatasetError(_missing_message(missing[i:], str(exc))) from None
        except HTTPError as exc:
            known = ", ".join(KNOWN_CATEGORIES[version])
            hint = f"; {version} categories: {known}" if exc.code == 404 else ""
            raise DatasetError(
                f"{url}: the server answered HTTP {exc.code} {exc.reason}{hint}; "
                f"or put the file at {target} by hand"
            ) from None
    return targets[0], targets[1]


def download(url: str, target: str | Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``target`` with a progress bar, then check its sha256.

    Bytes go to ``<target>.part``, renamed to ``target`` only when complete and valid,
    so an interrupted or corrupt download never looks like a cached file. Without a
    known ``sha256`` the computed digest is stored in ``<target>.sha256``.
    Raises :class:`HTTPError` when the server refuses, :class:`NetworkUnreachable` when
    it does not answer and :class:`DatasetError` for a short or corrupt download.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        response = urlopen(
            Request(url, headers={"User-Agent": "genrec-bench"}), timeout=CONNECT_TIMEOUT_S
        )
    except HTTPError:
        raise
    except (URLError, OSError) as exc:
        raise NetworkUnreachable(f"{url} cannot be reached ({_reason(exc)})") from None
    try:
        with response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"downloading {target.name}",
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DatasetError(
                f"{url}: download stopped after {received} of {total} bytes; run again"
            )
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise DatasetError(
                f"{url}: sha256 {got} does not match the published {sha256}; the file was "
                f"not kept; run again, or download it by hand to {target}"
            )
        os.replace(part, target)
    except (URLError, OSError) as exc:
        raise DatasetError(f"{url}: download failed ({_reason(exc)}); run again") from None
    finally:
        # Whatever went wrong, never leave half a file that a later run could trust.
        part.unlink(missing_ok=True)
    if sha256 is None:
        _sidecar(target).write_text(f"{got}  {target.name}\n")
    return target


def verify_checksum(path: str | Path) -> None:
    """Check ``path`` against its known sha256 or its ``.sha256`` sidecar, if either exists."""
    path = Path(path)
    expected = KNOWN_SHA256.get(path.name)
    origin = "the published checksum"
    sidecar = _sidecar(path)
    if expected is None and sidecar.is_file():
        text = sidecar.read_text().split()
        expected = text[0] if text else ""
        origin = str(sidecar)
    if expected is None:
        return  # placed by hand and never downloaded here: nothing to compare with
    got = file_sha256(path)
    if got != expected.lower():
        raise DatasetError(
            f"{path}: sha256 {got} does not match {expected or '(empty)'} from {origin}; "
            f"the file changed or is corrupt: delete {path.name} (and {sidecar.name}) to "
            "download it again"
        )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading


def read_amazon(
    directory: str | Path, category: str, version: str, allow_download: bool = False
) -> RawDataset:
    """Read one category of the 2014 or 2018 dump from ``directory``.

    Interactions keep file order with columns ``user``, ``item`` and ``timestamp``
    (``unixReviewTime`` as float seconds). Items are indexed by asin; items reviewed but
    absent from the meta file get empty text. Missing files are fetched only with
    ``allow_download`` (see :func:`ensure_files`).
    """
    version = _check_version(version)
    reviews_path, meta_path = ensure_files(directory, category, version, allow_download)
    interactions = read_reviews(reviews_path)
    reviewed = set(interactions["item"].unique())
    items = read_meta(meta_path, version, keep=reviewed)
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
    )


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
    being parsed. Repeated asins keep their first line.
    """
    path = Path(path)
    version = _check_version(version)
    rows: dict[str, dict[str, str]] = {}
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
        rows[asin] = {
            "title": _text(record.get("title"), "title", where),
            "brand": _text(record.get("brand"), "brand", where),
            "category": _category(record, version, where),
            "price": _price(record.get("price"), where),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(TEXT_FIELDS))
    frame.index = pd.Index(list(rows), dtype=object, name="item")
    return frame


# --------------------------------------------------------------------------- helpers


def _check_version(version: str) -> str:
    version = str(version)
    if version not in VERSIONS:
        raise DatasetError(f"Amazon dump version {version!r} is unknown; use one of {VERSIONS}")
    return version


def _check_category(category: str) -> None:
    if not category or not re.fullmatch(r"[A-Za-z0-9_.-]+", category):
        raise DatasetError(
            f"Amazon category {category!r} is not a file-name part; write it as in the file "
            "names, e.g. Beauty or Sports_and_Outdoors"
        )


def _missing_message(missing: list[tuple[str, Path]], why: str) -> str:
    steps = "; ".join(f"download {url} and save it as {target}" for url, target in missing)
    return f"missing Amazon file(s) and {why}: {steps} (or set ${DATA_ENV} to where they are)"


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc) or type(exc).__name__


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


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
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise DatasetError(
            f"{where}: field 'unixReviewTime' is {value!r}, not a number; it must hold Unix "
            "seconds"
        ) from None


def _text(value: Any, field: str, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field '{field}' is a {type(value).__name__}; expected text")
    # The 2018 crawl keeps HTML entities (&amp;) and stray whitespace in names.
    return " ".join(html.unescape(value).split())


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
