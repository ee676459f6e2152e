"""Output paths checked before any training: a run that cannot write its results fails in a
second, not after its first fit."""

from __future__ import annotations

import os
from pathlib import Path


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be (created as) a writable folder, or ``None`` when it can.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def file_problem(path: str | os.PathLike) -> str | None:
    """Why no file can be written at ``path`` (in an existing folder), or ``None``."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder"
    if not path.parent.exists():
        return f"the folder {path.parent} does not exist"
    if not path.parent.is_dir():
        return f"{path.parent} is a file, not a folder"
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        return f"{path if path.exists() else path.parent} is not writable"
    return None
