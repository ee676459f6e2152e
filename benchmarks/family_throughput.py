"""Training throughput of each model family under the ``cpu`` profile, and what the boards cost.

1. **Throughput.** For one method per family (the seq2seq T5 with RQ-VAE codes and with
   title identifiers, SETRec on T5 and on a decoder, the LLM family's decoder with
   LC-Rec's tasks, BIGRec), one short fit on ml-100k ``loo`` in one process, at the
   board's model size and batch (``cpu`` profile): one epoch of 2 sampled targets per
   user, validated on 20 cases. Throughput is the engine's own count, training samples
   over training seconds (``samples / (seconds - valid_seconds)`` of the epoch record),
   so tokenizer fitting and validation are not in it. Tokenizers train for a few epochs
   only: codes do not change the cost of a training step.
2. **Board cost.** From the committed results archive: per board and method, the runs under
   the board's profile and their fitting time (tokenizer + recommender, validation
   included) and ranking time, in CPU-hours of the machine that ran them.

Results go to ``leaderboards/training-throughput.md`` as measured. Run from the repository
root, on an otherwise idle machine: ``.venv/bin/python benchmarks/family_throughput.py``
(``--quick``: one family, nothing written; ``--cost-only``: the board cost alone, which
reads the archive and trains nothing).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from tabulate import tabulate

from benchmark.leaderboard import board_profile
from benchmark.runner import RunRequest, fit, machine, package_versions

ROOT = Path(__file__).resolve().parents[1]
COST_HEADERS = ["board", "profile", "method", "runs", "fit CPU-h", "ranking CPU-h"]
SHORT = {"recommender.epochs": 1, "recommender.prefixes_per_user": 2, "recommender.valid_cases": 20}
FAMILIES = {
    # family: (method, extra overrides)
    "seq2seq T5, RQ-VAE codes (tiger)": ("tiger", {"tokenizer.epochs": 20}),
    "seq2seq T5, title words (p5-tid)": ("p5-tid", {}),
    "SETRec, T5 (setrec)": ("setrec", {}),
    "SETRec, decoder-only (setrec-decoder)": ("setrec-decoder", {}),
    "LLM decoder, LC-Rec's 5 tasks (lcrec)": ("lcrec", {"tokenizer.epochs": 20}),
    "LLM decoder, titles (bigrec)": ("bigrec", {}),
}


def throughput(method: str, overrides: dict, cache: str) -> dict:
    request = RunRequest("ml-100k", "loo", method, seed=0, profile="cpu", params={**SHORT, **overrides})
    fitted = fit(request, cache, progress=False)
    record = fitted.run.state["epochs"][-1]
    params = fitted.method.recommender_params
    train_seconds = record["seconds"] - record["valid_seconds"]
    return {"batch": params["batch_size"], "samples": int(record["samples"]), "seconds": train_seconds,
            "rate": record["samples"] / train_seconds, "backbone": fitted.recommender.backbone()
            if hasattr(fitted.recommender, "backbone") else ""}


def board_cost(boards: Path) -> list[list]:
    """Per board and method: runs of the board's profile, fit and ranking hours."""
    table = []
    for path in sorted((boards / "results").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        if not rows:
            continue
        profile = board_profile(rows)
        per_method: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row["profile"] == profile:
                per_method[row["method"]].append(row)
        total_fit = total_rank = 0.0
        for method, runs in sorted(per_method.items()):
            fit_s = sum((r["train_seconds"] or 0) + (r["tokenizer_seconds"] or 0) for r in runs)
            rank_s = sum((r["infer_seconds_per_1k"] or 0) * len(r["ranks"]) / 1000 for r in runs)
            total_fit, total_rank = total_fit + fit_s, total_rank + rank_s
            table.append([path.name.split(".")[0], profile, method, len(runs), f"{fit_s / 3600:.2f}",
                          f"{rank_s / 3600:.2f}"])
        table.append([path.name.split(".")[0], profile, "**all**", sum(len(v) for v in per_method.values()),
                      f"**{total_fit / 3600:.2f}**", f"**{total_rank / 3600:.2f}**"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first family only, nothing written")
    parser.add_argument("--cost-only", action="store_true", help="the board cost only (reads the archive)")
    parser.add_argument("--out", default=str(ROOT / "leaderboards" / "training-throughput.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    speed = []
    if not args.cost_only:
        families = list(FAMILIES.items())[:1] if args.quick else list(FAMILIES.items())
        with tempfile.TemporaryDirectory() as cache:
            for name, (method, overrides) in families:
                result = throughput(method, overrides, cache)
                speed.append([name, result["backbone"], result["batch"], result["samples"],
                              f"{result['seconds']:.0f}", f"{result['rate']:.1f}"])
                print(speed[-1], flush=True)
    cost = board_cost(ROOT / "leaderboards")
    print(tabulate(cost, headers=COST_HEADERS))
    if args.quick:
        return
    end_load = os.getloadavg()
    versions = package_versions()
    lines = [
        "# Training throughput per model family (`cpu` profile) and what the boards cost",
        "",
        "Written by `benchmarks/family_throughput.py`; numbers are as measured, never edited.",
        "",
        f"- command: `{' '.join(['.venv/bin/python', 'benchmarks/family_throughput.py', *sys.argv[1:]])}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}, one thread (`torch.set_num_threads(1)`)",
        f"- load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in load)}; at end: "
        f"{', '.join(f'{x:.2f}' for x in end_load)}",
        "- packages: " + ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "genrec-bench")),
        "",
    ]
    if speed:
        lines += [
            "## Training samples per second (one process, the board's model size and batch)",
            "",
            "One epoch of 2 sampled targets per user on ml-100k `loo` (seed 0), `cpu` profile otherwise; "
            "samples over training seconds as the engine counts them (validation and tokenizer fitting "
            "excluded).",
            "",
            tabulate(speed, headers=["family (method)", "backbone", "batch", "samples", "train s", "samples/s"],
                     tablefmt="github"),
            "",
        ]
    lines += [
        "## What the committed boards cost",
        "",
        "From the results archive (`leaderboards/results/`): the runs each board shows (its profile), "
        "fitting (tokenizer + recommender, validation included) and ranking the test cases, in hours of "
        "the machine that ran them (one process per run, two runs at a time on the 2-core CPU).",
        "",
        tabulate(cost, headers=COST_HEADERS,
                 tablefmt="github"),
        "",
    ]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
