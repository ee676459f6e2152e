"""SASRec trained two ways on ml-100k loo: RecBole's per-prefix trainer vs the paper's windows.

``prefix`` runs with the recbole plugin's former tiny defaults (6 epochs, patience 2,
learning rate 2e-3), which is how sasrec-ce / sasrec-bce were fitted until the ``window``
objective existed; ``window`` runs with the plugin's current defaults. Everything else
is the default run: seed 0, tiny profile. Numbers are validation numbers (test is never
read) and land in ``leaderboards/sasrec-objective.md`` exactly as measured.

Run from the repository root: ``.venv/bin/python benchmarks/sasrec_objective.py``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from benchmark.evaluation.evaluator import evaluate
from benchmark.evaluation.metrics import per_case
from benchmark.runner import RunRequest, fit, load_split, machine, package_versions

ROOT = Path(__file__).resolve().parents[1]
PREFIX = {"recommender.objective": "prefix", "recommender.epochs": 6, "recommender.patience": 2,
          "recommender.learning_rate": 2e-3, "recommender.batch_size": 1024}
WINDOW = {"recommender.objective": "window"}
SETTINGS = ("epochs", "patience", "learning_rate", "batch_size")


def measure(method: str, params: dict, cache_dir: str) -> dict:
    """Fit once; fit seconds, epochs, best epoch and the restored model's validation numbers."""
    start = time.perf_counter()
    fitted = fit(RunRequest("ml-100k", "loo", method, seed=0, params=params), cache_dir, progress=False)
    seconds = time.perf_counter() - start
    valid = fitted.validate()
    model = fitted.recommender
    ranks = evaluate(model, fitted.split.valid, fitted.split.n_items, progress=False).ranks
    return {
        "method": method,
        "objective": fitted.method.recommender_params["objective"],
        "settings": {k: fitted.method.recommender_params[k] for k in SETTINGS},
        "seconds": seconds,
        "epochs": model.epochs_trained,
        "best_epoch": model.best_epoch,
        "ndcg@10": valid["ndcg@10"],
        "recall@10": valid["recall@10"],
        "curve": [e["ndcg@10"] for e in fitted.run.state["epochs"]],
        "per_case": per_case(ranks)["ndcg@10"],
    }


def paired(rows: list[dict]) -> list[list]:
    """Window minus prefix validation NDCG@10 per loss, with the standard error of the
    mean per-case difference: the yardstick for calling a gap noise."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        by = {r["objective"]: r["per_case"] for r in rows if r["method"] == method}
        if {"prefix", "window"} <= set(by):
            diff = by["window"] - by["prefix"]
            out.append([method, f"{diff.mean():+.4f}", f"{diff.std(ddof=1) / np.sqrt(len(diff)):.4f}", len(diff)])
    return out


def report(rows: list[dict], command: str, loads: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    table = [
        [r["method"], r["objective"], ", ".join(f"{k}={v}" for k, v in r["settings"].items()),
         f"{r['seconds']:.1f}", r["epochs"], r["best_epoch"],
         f"{r['ndcg@10']:.4f}", f"{r['recall@10']:.4f}"]
        for r in rows
    ]
    headers = ["method", "objective", "settings", "fit s", "epochs", "best epoch",
               "valid NDCG@10", "valid Recall@10"]
    curves = [[r["method"], r["objective"], " ".join(f"{v:.4f}" for v in r["curve"])] for r in rows]
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    return "\n".join([
        "# SASRec on ml-100k loo: prefix vs window objective",
        "",
        "Written by `benchmarks/sasrec_objective.py`; numbers are as measured, never edited.",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- load average (1, 5, 15 min) at start: {', '.join(f'{v:.2f}' for v in loads[0])}; "
        f"at end: {', '.join(f'{v:.2f}' for v in loads[1])} (other jobs sharing the CPU slow the fits "
        "and make the seconds noisy)",
        f"- packages: {versions}",
        "- protocol: seed 0, profile tiny, validation cases only (the test cases are not read); the "
        "numbers are those of the restored best epoch; fit seconds include validation after every epoch",
        "",
        tabulate(table, headers=headers, tablefmt="github"),
        "",
        "## Window minus prefix, per validation case",
        "",
        tabulate(paired(rows), headers=["method", "mean NDCG@10 difference", "standard error", "cases"],
                 tablefmt="github"),
        "",
        "## Validation NDCG@10 per epoch",
        "",
        tabulate(curves, headers=["method", "objective", "NDCG@10 after each epoch"], tablefmt="github"),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="ce,bce", help="comma-separated: ce,bce")
    parser.add_argument("--output", default=str(ROOT / "leaderboards" / "sasrec-objective.md"))
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python benchmarks/sasrec_objective.py", *sys.argv[1:]])
    load_split("ml-100k", "loo")  # load once, outside the timings
    loads = [os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for loss in args.losses.split(","):
            for params in (PREFIX, WINDOW):
                rows.append(measure(f"sasrec-{loss.strip()}", params, cache_dir))
                print({k: v for k, v in rows[-1].items() if k != "per_case"}, flush=True)
    loads.append(os.getloadavg())
    Path(args.output).write_text(report(rows, command, tuple(loads)))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
