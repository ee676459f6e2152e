"""Content-hashed artifacts under ``runs/cache/``: embeddings, identifiers, codes.

The one caching scheme of the harness and its plugins. An artifact's path is derived
from a hash of everything that determines it (data digest, parameters, seed), so a
changed input never reuses a stale file and an unchanged one is never recomputed.
Artifacts are numpy arrays (``.npy``) or JSON documents (``.json``); item identifiers
are JSON documents (:func:`save_identifiers`).

Writes go to a temporary file first and are renamed into place, so a killed run leaves
no half file. A file that is unreadable all the same (truncated or corrupted on disk,
copied half-way) is not trusted: loading it prints one warning line naming it, deletes
it and returns ``None``, so the caller rebuilds it as if it had never been cached. So is
an array of the wrong shape or type for what its reader expects (``load_array(path,
check)``): a file copied from elsewhere, or left by a model whose width changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.components import ItemIdentifiers

CACHE_ENV = "GENREC_BENCH_CACHE"


def default_cache() -> str:
    """The artifact cache folder: ``$GENREC_BENCH_CACHE``, else ``runs/cache`` (read when called)."""
    return os.environ.get(CACHE_ENV) or "runs/cache"


def content_hash(*parts: Any) -> str:
    """Stable 16-hex-digit hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(array: np.ndarray) -> str:
    """Content hash of an array's bytes, shape and dtype (a cache key part)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(array.tobytes())
    digest.update(f"{array.shape}{array.dtype}".encode())
    return digest.hexdigest()[:16]


def artifact_path(root: str | Path, kind: str, *parts: Any, suffix: str = ".npy") -> Path:
    """Where the artifact of ``kind`` for ``parts`` lives (directories are created)."""
    path = Path(root) / kind / f"{content_hash(*parts)}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- arrays


def save_array(path: Path, array: np.ndarray) -> None:
    with _atomic(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def load_array(path: Path, check: Callable[[np.ndarray], str | None] | None = None) -> np.ndarray | None:
    """The array at ``path``; ``None`` when absent or unreadable (then deleted, with a warning).

    ``check(array)`` returns ``None`` for an array fit for its use, else what the file should
    hold (``"(120, 384) finite floats"``): such a file is deleted with a warning too.
    """
    if not path.exists():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        discard_unreadable(path, error)
        return None
    expected = check(array) if check is not None else None
    if expected:
        discard_mismatched(path, f"shape {array.shape} {array.dtype}", expected)
        return None
    return array


def float_rows(rows: int, width: int | None = None) -> Callable[[np.ndarray], str | None]:
    """A ``load_array`` check: a 2-D array of finite floats, ``rows`` rows (and ``width``
    columns when given): one vector per item."""

    def check(array: np.ndarray) -> str | None:
        fits = (array.ndim == 2 and len(array) == rows and (width is None or array.shape[1] == width)
                and array.dtype.kind == "f" and bool(np.isfinite(array).all()))
        return None if fits else f"({rows}, {width if width is not None else 'width'}) finite floats"

    return check


# --------------------------------------------------------------------------- JSON


def save_json(path: Path, value: Any) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(json.dumps(value), encoding="utf-8")


def load_json(path: Path, decode: Callable[[Any], Any] | None = None) -> Any:
    """The JSON document at ``path``, passed through ``decode`` if given.

    ``None`` when absent; also when unparsable or refused by ``decode`` (a ``KeyError``,
    ``TypeError`` or ``ValueError``): the file is then deleted with a warning.
    """
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return decode(value) if decode is not None else value
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        discard_unreadable(path, error)
        return None


# --------------------------------------------------------------------------- identifiers


def save_identifiers(path: Path, identifiers: ItemIdentifiers) -> None:
    save_json(path, {
        "kind": identifiers.kind,
        "n_items": identifiers.n_items,
        "codes": None if identifiers.codes is None else identifiers.codes.tolist(),
        "vocab_sizes": list(identifiers.vocab_sizes),
        "texts": identifiers.texts,
        "token_sets": None if identifiers.token_sets is None else identifiers.token_sets.tolist(),
        "info": identifiers.info,
    })


def load_identifiers(path: Path) -> ItemIdentifiers | None:
    """Identifiers saved by :func:`save_identifiers`; ``None`` when absent or unreadable."""
    return load_json(path, _identifiers_from_record)


def _identifiers_from_record(record: dict[str, Any]) -> ItemIdentifiers:
    n_items = int(record["n_items"])
    codes, token_sets, texts = record["codes"], record.get("token_sets"), record["texts"]
    if texts is not None and len(texts) != n_items:
        raise ValueError(f"{len(texts)} texts for {n_items} items")
    vocab_sizes = tuple(int(v) for v in record["vocab_sizes"])
    if codes is not None:
        codes = np.array(codes, np.int64).reshape(n_items, -1)
        if codes.shape[1] != len(vocab_sizes) or (codes.size and ((codes < 0) | (codes >= vocab_sizes)).any()):
            raise ValueError(f"codes of {codes.shape[1]} levels do not fit vocab_sizes {list(vocab_sizes)}")
    return ItemIdentifiers(
        kind=record["kind"],
        n_items=n_items,
        codes=codes,
        vocab_sizes=vocab_sizes,
        texts=texts,
        token_sets=None if token_sets is None else np.array(token_sets, np.float32).reshape(n_items, -1),
        info=dict(record["info"]),
    )


# --------------------------------------------------------------------------- helpers


def discard_unreadable(path: Path, error: BaseException) -> None:
    """Warn in one line naming ``path``, then delete it so that it is rebuilt."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    print(f"warning: cache file {path} is unreadable ({type(error).__name__}: {reason}); "
          "deleted it, rebuilding", file=sys.stderr, flush=True)
    path.unlink(missing_ok=True)


def discard_mismatched(path: Path, found: str, expected: str) -> None:
    """Warn in one line that ``path`` holds ``found``, not ``expected``; then delete it so that it is rebuilt."""
    print(f"warning: cache file {path} holds {found}, expected {expected}; deleted it, rebuilding",
          file=sys.stderr, flush=True)
    path.unlink(missing_ok=True)


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary file that replaces ``path`` only when the block succeeds."""
    # Per process: two runs sharing a cache never write the same temporary file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
