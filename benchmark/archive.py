"""The committed results archive: every run behind the committed leaderboards, compact.

``<leaderboards>/results/<dataset>-<split>.jsonl.gz`` holds one JSON line per run: the
store row (identity, parameters, code hashes, metrics, per-case target ranks and subset
labels, timings, versions), without the store's local id. ``run`` imports the archive
before deciding what to fit, so a run already archived is never fitted again, on any
machine; ``run`` and ``leaderboard`` export what the store holds back into the archive
and render boards from the store, so boards grow across machines.

Files are written sorted by run key with a fixed gzip timestamp: an unchanged set of
runs gives byte-identical files (no noise in version control).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.leaderboard import board_stem
from benchmark.methods import resolve_method
from benchmark.store import Store, run_key

FOLDER = "results"


def archive_path(board_dir: str | Path, dataset: str, split: str) -> Path:
    return Path(board_dir) / FOLDER / f"{board_stem(dataset, split)}.jsonl.gz"


def read_archive(path: str | Path) -> list[dict[str, Any]]:
    """Every run of one results archive file, in order; a damaged file is one clear error."""
    path = Path(path)
    rows = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BenchmarkError(
                        f"{path}:{number}: not a JSON line ({exc}); restore the file from version control"
                    ) from None
    except (OSError, EOFError) as exc:
        raise BenchmarkError(f"{path}: unreadable results archive ({exc}); restore it from version control") \
            from None
    return rows


def import_archive(store: Store, board_dir: str | Path) -> int:
    """Add every archived run the store lacks; return how many were added."""
    folder = Path(board_dir) / FOLDER
    added = 0
    for path in sorted(folder.glob("*.jsonl.gz")):
        for row in read_archive(path):
            added += store.insert_archived(row)
    return added


def export_archive(store: Store, board_dir: str | Path, dataset: str, split: str) -> Path | None:
    """Write every run of (dataset, split) in the store (archived ones included) to its file."""
    rows = store.rows(dataset=dataset, split=split)
    if not rows:
        return None
    path = archive_path(board_dir, dataset, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: (r["created_at"], r["run_key"]))
    # One line per run key (two workers importing the archive at once may both have added a row).
    rows = list({row["run_key"]: row for row in rows}.values())
    rows.sort(key=lambda r: (r["created_at"], r["run_key"]))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two workers may export at once
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        for row in rows:
            row = {k: v for k, v in row.items() if k != "id"}
            f.write((json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n").encode())
    os.replace(tmp, path)
    return path


def key_report(board_dir: str | Path) -> list[dict[str, Any]]:
    """Every archived run with the run key the code gives its request now.

    The request is rebuilt from the row (dataset, split digest, method, its stored
    parameters as overrides, seed, profile, protocol, tuning trials) and resolved with the
    plugins as they are, so a plugin whose version changed, or a parameter whose resolved
    value moved, shows as a key that differs. ``status``: ``kept`` (the same key),
    ``superseded`` (a different key, but a later archived row of the same method, seed and
    profile has the current one) or ``re-runs`` (``run`` would fit it again).
    """
    report = []
    for path in sorted((Path(board_dir) / FOLDER).glob("*.jsonl.gz")):
        for row in read_archive(path):
            try:
                method = resolve_method(row["method"], row["profile"], row["params"])
                now = run_key({**row, "params": method.key_params, "code_hashes": method.versions, "info": {}})
            except BenchmarkError as exc:
                now = f"unresolvable: {exc}"
            report.append({"board": path.name.removesuffix(".jsonl.gz"), "method": row["method"],
                           "seed": row["seed"], "profile": row["profile"], "created_at": row["created_at"],
                           "archived_key": row["run_key"], "key_now": now})
    current = {(r["board"], r["method"], r["seed"], r["profile"]): r["created_at"]
               for r in sorted(report, key=lambda r: r["created_at"]) if r["archived_key"] == r["key_now"]}
    for r in report:
        newest = current.get((r["board"], r["method"], r["seed"], r["profile"]))
        r["status"] = ("kept" if r["archived_key"] == r["key_now"]
                       else "superseded" if newest is not None and newest > r["created_at"] else "re-runs")
    return report
