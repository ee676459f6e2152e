"""Fits in flight: list the checkpoints of an artifact cache, and move them to another machine.

A fit checkpoints after every validation (:mod:`benchmark.nn.engine`) under
``<cache>/checkpoints/<hash>.pt``, the hash naming the run exactly; ``run`` with the same
request resumes from it. A fit longer than a machine's lease resumes on another machine
when its checkpoint and the artifacts its run reads (the tokenizer's cached identifiers,
the shared embeddings: everything else in the cache, keyed by content hash) are there too:

- :func:`describe` lists the checkpoints: run, epoch reached (``finished`` for a fit that
  ended and whose run has not stored its row yet: killed while ranking, say), best
  validation NDCG@10, training minutes;
- :func:`export` copies them with the rest of the cache into a folder and writes a
  ``README.md`` listing what it holds and how to resume;
- :func:`import_` copies such a folder into a cache; a checkpoint the cache already holds
  at the same or a later epoch (or finished) is kept.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

from tabulate import tabulate

from benchmark.errors import BenchmarkError

HEADERS = ["Method", "Dataset", "Split", "Seed", "Profile", "Fit", "Epoch", "Best N@10 (epoch)", "Train min", "File"]


def _state(path: Path) -> dict[str, Any] | None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a half-written or foreign file: not a fit anyone can resume
        return None
    return state if isinstance(state, dict) and "epoch" in state and "records" in state else None


def _reached(state: dict[str, Any]) -> tuple[bool, int]:
    """How far a checkpoint's fit got: a finished fit is ahead of any unfinished one."""
    return bool(state.get("finished")), int(state["epoch"])


def describe(cache: str | Path) -> list[dict[str, Any]]:
    """One entry per readable checkpoint under ``<cache>/checkpoints``, oldest first."""
    folder = Path(cache) / "checkpoints"
    entries = []
    for path in sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []:
        state = _state(path)
        if state is None:
            continue
        run = state.get("run") or {}
        scored = [r for r in state["records"] if "ndcg@10" in r]
        best = max(scored, key=lambda r: r["ndcg@10"]) if scored else None
        entries.append({"method": run.get("method", "?"), "dataset": run.get("dataset", "?"),
                        "split": run.get("split", "?"), "seed": run.get("seed", "?"),
                        "profile": run.get("profile", "?"), "fit": run.get("fit", "?"),
                        "epoch": f"{int(state['epoch']) + 1}" + (" (finished)" if state.get("finished") else ""),
                        "best": f"{best['ndcg@10']:.4f} ({int(best['epoch']) + 1})" if best else "-",
                        "minutes": float(state.get("seconds", 0.0)) / 60, "file": path.name})
    return entries


def table(entries: list[dict[str, Any]]) -> str:
    return tabulate([[e["method"], e["dataset"], e["split"], e["seed"], e["profile"], e["fit"], e["epoch"], e["best"],
                      f"{e['minutes']:.1f}", e["file"]] for e in entries], headers=HEADERS, disable_numparse=True)


def _cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))


def export(cache: str | Path, folder: str | Path) -> list[dict[str, Any]]:
    """Copy every checkpoint of ``cache`` and the artifacts beside them into ``folder``."""
    cache, folder = Path(cache), Path(folder)
    entries = describe(cache)
    if not entries:
        raise BenchmarkError(f"--cache {cache}: no checkpoint of a fit in flight under {cache / 'checkpoints'}; "
                             "a fit leaves one after each validation until it finishes")
    if folder.exists() and any(folder.iterdir()):
        readme = folder / "README.md"
        if not (readme.is_file() and readme.read_text(encoding="utf-8").startswith("# Fits in flight")):
            raise BenchmarkError(f"--export {folder}: the folder holds files this command did not write; give a "
                                 "new or empty folder, or one an earlier --export wrote (it is replaced)")
        shutil.rmtree(folder)  # an earlier export: the folder mirrors the cache now, older checkpoints go
    for path in _cache_files(cache):
        if path.parent.name == "checkpoints" and path.name not in {e["file"] for e in entries}:
            continue
        target = folder / path.relative_to(cache)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    now = datetime.datetime.now(datetime.timezone.utc)
    (folder / "README.md").write_text("\n".join([
        "# Fits in flight",
        "",
        f"Written by `genrec-bench checkpoints --export {folder}` on {now:%Y-%m-%d %H:%M} UTC: the checkpoints of "
        "the fits below (after the epoch shown) and the artifacts their runs read. To resume them on "
        f"another machine: `genrec-bench checkpoints --import {folder}`, then the same `genrec-bench run` "
        "request (it resumes after the epoch shown; a fit marked finished is not trained again, its run ranks "
        "the test cases with the kept weights and removes the checkpoint once its row is stored).",
        "",
        *("    " + line for line in table(entries).splitlines()),
        "",
    ]), encoding="utf-8")
    return entries


def import_(folder: str | Path, cache: str | Path) -> tuple[list[str], list[str]]:
    """Copy an exported folder into ``cache``: (checkpoints taken, checkpoints kept as they were)."""
    folder, cache = Path(folder), Path(cache)
    if not (folder / "checkpoints").is_dir():
        raise BenchmarkError(f"--import {folder}: no checkpoints/ folder in it; give a folder written by "
                             "`genrec-bench checkpoints --export`")
    taken, kept = [], []
    for path in _cache_files(folder):
        relative = path.relative_to(folder)
        if relative == Path("README.md"):
            continue
        target = cache / relative
        if path.parent.name == "checkpoints" and target.exists():
            mine, theirs = _state(target), _state(path)
            if mine is not None and (theirs is None or _reached(mine) >= _reached(theirs)):
                kept.append(path.name)
                continue
        elif target.exists():
            continue  # a content-keyed artifact: the same bytes
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        if path.parent.name == "checkpoints":
            taken.append(path.name)
    return taken, kept
