"""Amazon dump files: names, addresses and a download cache.

:func:`ensure_files` finds a category's (reviews, meta) files in
``$GENREC_BENCH_DATA/amazon/<version>`` and, when they are absent and the network answers,
downloads them once (``.part`` file, progress bar, sha256 check) so later runs read the
cache.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from benchmark.errors import DatasetError

VERSIONS = ("2014", "2018")
DATA_ENV = "GENREC_BENCH_DATA"
DEFAULT_DATA_ROOT = "~/.cache/genrec-bench/data"
CONNECT_TIMEOUT_S = 10.0
CHUNK_BYTES = 1 << 20

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


class NetworkUnreachable(DatasetError):
    """The download server did not answer (no network, DNS failure, timeout)."""


def file_names(category: str, version: str) -> tuple[str, str]:
    """The (reviews, meta) file names of ``category`` in dump ``version``."""
    version = check_version(version)
    _check_category(category)
    if version == "2014":
        return f"reviews_{category}_5.json.gz", f"meta_{category}.json.gz"
    return f"{category}_5.json.gz", f"meta_{category}.json.gz"


def file_urls(category: str, version: str) -> tuple[str, str]:
    """The public (reviews, meta) download addresses of ``category`` in ``version``."""
    reviews, meta = file_names(category, version)
    if check_version(version) == "2014":
        return _URL_2014 + reviews, _URL_2014 + meta
    return _URL_2018_REVIEWS + reviews, _URL_2018_META + meta


def default_directory(version: str) -> Path:
    """``$GENREC_BENCH_DATA/amazon/<version>`` (``~/.cache/genrec-bench/data`` by default)."""
    root = os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser() / "amazon" / check_version(version)


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


# --------------------------------------------------------------------------- helpers


def check_version(version: str) -> str:
    """``version`` as a string, if it names a known dump ("2014" or "2018")."""
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

