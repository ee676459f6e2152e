"""Content-hashed artifacts under ``runs/cache/``: embeddings, identifiers, checkpoints.

An artifact's path is derived from a hash of everything that determines it (data digest,
parameters, seed), so a changed input never reuses a stale file and an unchanged one is
never recomputed. Writes go to a temporary file first: a killed run leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE = Path(os.environ.get("GENREC_BENCH_CACHE", "runs/cache"))


def content_hash(*parts: Any) -> str:
    """Stable 16-hex-digit hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def artifact_path(root: str | Path, kind: str, *parts: Any, suffix: str = ".npy") -> Path:
    """Where the artifact of ``kind`` for ``parts`` lives (directories are created)."""
    path = Path(root) / kind / f"{content_hash(*parts)}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_array(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def load_array(path: Path) -> np.ndarray | None:
    return np.load(path) if path.exists() else None
