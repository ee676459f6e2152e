"""LightGCN before and after clearing RecBole's propagation caches on the restored epoch.

RecBole's LightGCN keeps its propagated embeddings (``restore_user_e``/``restore_item_e``)
after a ``full_sort_predict``; loading the best epoch's state dict does not reset them,
so without the fix the restored model scores with the *last* validated epoch's
embeddings. This script fits LightGCN on ml-100k ``loo`` (seed 0, tiny profile) twice,
with the fix and with it switched off, and writes both rows to
``leaderboards/lightgcn-cache.md``:

    .venv/bin/python benchmarks/lightgcn_cache.py
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from benchmark.runner import RunRequest, execute, machine, package_versions
from plugins.recommenders import recbole

OUT = Path("leaderboards/lightgcn-cache.md")


def fit_row(clear_caches: bool, cache_dir: str) -> list:
    original = recbole.clear_propagation_caches
    if not clear_caches:
        recbole.clear_propagation_caches = lambda model: None
    try:
        row, _, _ = execute(RunRequest("ml-100k", "loo", "lightgcn", seed=0), cache_dir=cache_dir, progress=False)
    finally:
        recbole.clear_propagation_caches = original
    epochs = row["info"]["epochs"]
    best = max(range(len(epochs)), key=lambda e: epochs[e]["ndcg@10"])
    return ["cleared (fixed)" if clear_caches else "kept (old behaviour)", len(epochs), best + 1,
            f"{epochs[best]['ndcg@10']:.4f}", f"{row['valid_metrics']['ndcg@10']:.4f}",
            f"{row['metrics']['all']['recall@10']:.4f}", f"{row['metrics']['all']['ndcg@10']:.4f}"]


def main() -> None:
    cache_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/cache"
    rows = [fit_row(False, cache_dir), fit_row(True, cache_dir)]
    versions = package_versions()
    lines = [
        "# LightGCN on ml-100k loo: propagation caches kept vs cleared after restoring the best epoch",
        "",
        "Written by `benchmarks/lightgcn_cache.py`; numbers are as measured, never edited.",
        "",
        "- command: `.venv/bin/python benchmarks/lightgcn_cache.py`",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}",
        f"- machine: {machine()}",
        "- packages: " + ", ".join(f"{p} {versions[p]}" for p in ("torch", "recbole", "genrec-bench")),
        "- protocol: seed 0, tiny profile, seen items excluded; the best epoch is chosen on validation "
        "NDCG@10; 'validation of the reported model' re-evaluates the restored model",
        "",
        tabulate(rows, headers=["caches", "epochs", "best epoch", "valid N@10 of best epoch",
                                "valid N@10 of reported model", "test R@10", "test N@10"],
                 tablefmt="github", disable_numparse=True),
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
