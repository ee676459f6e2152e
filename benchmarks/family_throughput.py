"""Training throughput of each model family under the ``cpu`` profile, and what the boards cost.

1. **Throughput.** For one method per family (the seq2seq T5 with RQ-VAE codes and with
   title identifiers, SETRec on T5 and on a decoder, the LLM family's decoder with
   LC-Rec's tasks, BIGRec, the decoder-only TIGER, RPG), one short fit on ml-100k ``loo``
   in one process, at the board's model size and batch (``cpu`` profile): one epoch,
   validated on 20 cases; an epoch of 2 sampled targets per user for the methods that
   train on history prefixes, of one window per user (up to ``max_history`` targets each)
   for the decoder-only TIGER, and of every window (every target once) for RPG, which has
   no per-user sampling. Throughput is the engine's own count, training samples over
   training seconds (``samples / (seconds - valid_seconds)`` of the epoch record), so
   tokenizer fitting and validation are not in it; next-item targets per second count a
   window's every target (a prefix sample is one). Tokenizers train for a few epochs (or
   rotation updates) only: codes do not change the cost of a training step.
2. **Board cost.** From the committed results archive: per board and method, the runs under
   the board's profile and their fitting time (tokenizer + recommender, validation
   included) and ranking time, in CPU-hours of the machine that ran them.

Results go to two blocks of ``leaderboards/training-speed.md`` as measured, the throughput
and the board cost (with every archived ``cpu`` fit of the ``loo`` board: epochs, samples,
stop, minutes); the fp32-against-bf16 tables of ``benchmarks/training_speed.py`` stay. Run from the repository
root, on an otherwise idle machine: ``.venv/bin/python benchmarks/family_throughput.py``
(``--quick``: one family, nothing written; ``--families tiger,rpg``: those methods' families
only; ``--cost-only``: the board cost alone, which reads the archive, trains nothing and
leaves the throughput block as it was).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from _blocks import write_block  # benchmarks/, on the path when run as a script
from tabulate import tabulate

from benchmark.archive import FOLDER, archive_path, read_archive
from benchmark.leaderboard import board_profile, fit_seconds, fits
from benchmark.nn.engine import release
from benchmark.nn.sequences import training_prefixes, training_windows
from benchmark.runner import RunRequest, fit, machine, package_versions
from plugins.recommenders import rpg

ROOT = Path(__file__).resolve().parents[1]
COST_HEADERS = ["board", "profile", "method", "runs", "fit CPU-h", "ranking CPU-h"]
SPEED_HEADERS = ["family (method)", "backbone", "batch", "samples", "train s", "samples/s", "vs tiger",
                 "next-item targets", "targets/s"]
# Every family: one epoch, validated on 20 cases. The runner refuses a parameter a method does
# not declare, so each family adds the overrides that make its epoch short.
SHORT = {"recommender.epochs": 1, "recommender.valid_cases": 20}
PREFIXES = {"recommender.prefixes_per_user": 2}  # 2 sampled targets per user
FAMILIES = {
    # family: (method, extra overrides)
    "seq2seq T5, RQ-VAE codes (tiger)": ("tiger", {**PREFIXES, "tokenizer.epochs": 20}),
    "seq2seq T5, title words (p5-tid)": ("p5-tid", PREFIXES),
    "SETRec, T5 (setrec)": ("setrec", PREFIXES),
    "SETRec, decoder-only (setrec-decoder)": ("setrec-decoder", PREFIXES),
    "LLM decoder, LC-Rec's 5 tasks (lcrec)": ("lcrec", {**PREFIXES, "tokenizer.epochs": 20}),
    "LLM decoder, titles (bigrec)": ("bigrec", PREFIXES),
    # One window per user, each training up to max_history targets in one pass.
    "decoder-only, RQ-VAE codes (tiger-decoder)": ("tiger-decoder", {"recommender.windows_per_user": 1,
                                                                      "tokenizer.epochs": 20}),
    # No per-user sampling: the epoch is every window; OPQ with a few rotation updates.
    "RPG, OPQ digits (rpg)": ("rpg", {"tokenizer.opq_iterations": 5}),
}


def throughput(method: str, overrides: dict, cache: str) -> dict:
    request = RunRequest("ml-100k", "loo", method, seed=0, profile="cpu", params={**SHORT, **overrides})
    fitted = fit(request, cache, progress=False)
    release(fitted.run)  # a later measurement in this cache must train, not reuse this fit
    record = fitted.run.state["epochs"][-1]
    params = fitted.method.recommender_params
    train_seconds = record["seconds"] - record["valid_seconds"]
    return {"batch": params["batch_size"], "samples": int(record["samples"]), "seconds": train_seconds,
            "rate": record["samples"] / train_seconds, "backbone": fitted.recommender.backbone()
            if hasattr(fitted.recommender, "backbone") else "",
            "targets": next_item_targets(fitted, record["epoch"], int(record["samples"])),
            "flops": seq2seq_flops(fitted) if fitted.method.spec.recommender == "seq2seq" else None}


def matmul_peak(size: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of one thread multiplying two ``size`` x ``size`` fp32 matrices (the best of
    ``repeats``): what this CPU's BLAS reaches on the friendliest shape."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def seq2seq_flops(fitted) -> float:
    """FLOPs of one training sample of a fitted seq2seq recommender: forward and backward of
    its own loss on one board-sized batch of training prefixes (``FlopCounterMode``), over
    the batch size."""
    from torch.utils.flop_counter import FlopCounterMode

    recommender, data = fitted.recommender, fitted.data
    params = fitted.method.recommender_params
    rows = training_prefixes(data.train, params["prefixes_per_user"], 0, 0, "throughput")[: params["batch_size"]]
    recommender.model.train()
    with FlopCounterMode(display=False) as counter:
        recommender._loss(*recommender._batch(data, rows)).backward()
    recommender.model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(rows)


def converged_samples(boards: Path, method: str = "tiger") -> list[int]:
    """Training samples of each archived `cpu` ``loo`` fit of ``method`` up to the epoch it
    stopped at (what a converged fit used)."""
    path = archive_path(boards, "ml-100k", "loo")
    if not path.exists():
        return []
    rows = read_archive(path)
    return [int(r["info"]["epochs"][-1]["samples"]) for r in rows
            if r["method"] == method and r["profile"] == "cpu" and (r["info"] or {}).get("epochs")
            and all(t.get("stop_reason") == "patience" for t in r["info"].get("training", {}).values())]


def converged_lines(boards: Path) -> list[str]:
    """What each archived converged `cpu` fit on ml-100k ``loo`` took: epochs run and chosen,
    training samples, fitting minutes (every process of a resumed fit)."""
    path = archive_path(boards, "ml-100k", "loo")
    if not path.exists():
        return []
    rows = read_archive(path)
    table = []
    for r in sorted(rows, key=lambda r: (r["method"], r["seed"])):
        trained = fits(r)
        records = (r["info"] or {}).get("epochs") or []
        if r["profile"] != "cpu" or not trained or not records:
            continue
        samples = f"{int(records[-1]['samples']):,}" if "samples" in records[-1] else "n/a"
        table.append([r["method"], r["seed"], " + ".join(str(t["epochs"]) for t in trained),
                      " + ".join(str(t["best"]) for t in trained), samples,
                      ", ".join(t["stop"] for t in trained), f"{(fit_seconds(r) or 0) / 60:.1f}"])
    if not table:
        return []
    return ["### The archived `cpu` fits on ml-100k `loo`, one per row", "",
            "Epochs run and the epoch validation chose (1-based), training samples up to the stop (n/a for "
            "RecBole's fits, which do not count them), what "
            "stopped the fit and its fitting minutes (beside other jobs on the 2-core CPU).", "",
            tabulate(table, headers=["method", "seed", "epochs", "best", "samples", "stopped by", "fit min"],
                     tablefmt="github", disable_numparse=True), ""]


def next_item_targets(fitted, epoch: int, samples: int) -> int | None:
    """Next-item targets the epoch trained, from the recommender's own epoch of windows: a
    window trains every item after its first (``decoder``, ``rpg``), a prefix sample one
    item; ``None`` for the LLM recommender, whose samples mix its alignment tasks in."""
    recommender, params, data = fitted.method.spec.recommender, fitted.method.recommender_params, fitted.data
    if recommender == "decoder":
        rows = training_windows(data.train, data.max_history, params["windows_per_user"], fitted.request.seed,
                                epoch, "recommender 'decoder'")
        return int(rows[:, 2].sum())
    if recommender == "rpg":
        windows = rpg.training_windows(data.train, data.max_history + 1, fitted.request.seed, epoch)
        return sum(len(window) - 1 for window in windows)
    return None if recommender == "llm" else samples


def board_cost(boards: Path) -> list[list]:
    """Per board and method: runs of the board's profile, fit and ranking hours."""
    table = []
    for path in sorted((boards / FOLDER).glob("*.jsonl.gz")):
        rows = read_archive(path)
        if not rows:
            continue
        profile = board_profile(rows)
        per_method: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row["profile"] == profile:
                per_method[row["method"]].append(row)
        total_fit = total_rank = 0.0
        for method, runs in sorted(per_method.items()):
            fit_s = sum(fit_seconds(r) or 0 for r in runs)  # the tokenizer's time is inside it
            rank_s = sum((r["infer_seconds_per_1k"] or 0) * len(r["ranks"]) / 1000 for r in runs)
            total_fit, total_rank = total_fit + fit_s, total_rank + rank_s
            table.append([path.name.split(".")[0], profile, method, len(runs), f"{fit_s / 3600:.2f}",
                          f"{rank_s / 3600:.2f}"])
        table.append([path.name.split(".")[0], profile, "**all**", sum(len(v) for v in per_method.values()),
                      f"**{total_fit / 3600:.2f}**", f"**{total_rank / 3600:.2f}**"])
    return table


def ceiling_lines(peak: float, flops: float, rate: float, samples: list[int]) -> list[str]:
    """How fast tiger could train here at best: its FLOPs per sample against the BLAS peak."""
    ceiling = peak * 1e9 / flops
    lines = [
        "### How far tiger's training speed can go on this CPU",
        "",
        f"- one training sample of `tiger` (`cpu` size, forward and backward, counted by "
        f"`torch.utils.flop_counter`): {flops / 1e6:.1f} MFLOP",
        f"- one thread's fp32 matrix-multiply peak (1024 x 1024 x 1024, best of 10): {peak:.1f} GFLOP/s",
        f"- so at most {ceiling:.0f} samples/s per core even if every operation ran at that peak; measured "
        f"{rate:.1f} ({rate / ceiling:.0%} of it: the model's multiplies are 64 wide, a shape BLAS runs well "
        "below its peak, and attention over 16-wide heads, layer norms, dropout and the optimiser are "
        "memory-bound)",
    ]
    if samples:
        least = min(samples) * flops / (2 * peak * 1e9) / 60
        lines.append(
            f"- the archived converged `tiger` fits (`cpu`, ml-100k `loo`) trained "
            f"{', '.join(f'{n:,}' for n in samples)} samples to stop by patience: at the peak on both cores at "
            f"once, at least {least:.0f} minutes for the shortest of them")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first family only, nothing written")
    parser.add_argument("--cost-only", action="store_true", help="the board cost only (reads the archive)")
    parser.add_argument("--families", default="",
                        help="comma-separated methods: only their families (default: every family)")
    parser.add_argument("--out", default=str(ROOT / "leaderboards" / "training-speed.md"),
                        help="results page; this script's block of it is replaced, the rest kept")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    speed = []
    if not args.cost_only:
        chosen = [m for m in args.families.split(",") if m]
        unknown = sorted(set(chosen) - {method for method, _ in FAMILIES.values()})
        if unknown:
            raise SystemExit(f"--families {','.join(unknown)}: no family; the families' methods: "
                             f"{', '.join(method for method, _ in FAMILIES.values())}")
        families = [(name, family) for name, family in FAMILIES.items() if not chosen or family[0] in chosen]
        families = families[:1] if args.quick else families
        tiger_rate = tiger_flops = None
        peak = matmul_peak()
        print(f"matmul peak: {peak:.1f} GFLOP/s", flush=True)
        with tempfile.TemporaryDirectory() as cache:
            for name, (method, overrides) in families:
                result = throughput(method, overrides, cache)
                tiger_rate = result["rate"] if method == "tiger" else tiger_rate
                tiger_flops = result["flops"] if method == "tiger" else tiger_flops
                targets = result["targets"]
                speed.append([name, result["backbone"], result["batch"], result["samples"],
                              f"{result['seconds']:.0f}", f"{result['rate']:.1f}",
                              f"{result['rate'] / tiger_rate:.2f}x" if tiger_rate else "",
                              "" if targets is None else targets,
                              "" if targets is None else f"{targets / result['seconds']:.1f}"])
                print(speed[-1], flush=True)
    cost = board_cost(ROOT / "leaderboards")
    print(tabulate(cost, headers=COST_HEADERS))
    if args.quick:
        return
    header = provenance(started, load)
    if speed:
        lines = [
            "## Training throughput per model family (`cpu` profile)",
            "",
            *header,
            "### Training samples per second (one process, the board's model size and batch)",
            "",
            "One epoch on ml-100k `loo` (seed 0), `cpu` profile otherwise: 2 sampled targets per user for "
            "the prefix-trained methods, one window per user for tiger-decoder, every window for rpg; "
            "samples over training seconds as the engine counts them (validation and tokenizer fitting "
            "excluded).",
            "",
            tabulate(speed, headers=SPEED_HEADERS, tablefmt="github", disable_numparse=True),
            "",
            "- a sample is one history prefix and its next item, except for tiger-decoder and rpg, whose "
            "sample is a window of the user's sequence that trains each of its items after the first in "
            "one pass (up to `max_history` targets), and lcrec, whose samples mix LC-Rec's 5 tasks.",
            "- vs tiger: samples/s over tiger's; next-item targets (per second: over the training seconds) "
            "compare the window-trained methods with the prefix-trained ones (blank for lcrec).",
            "",
        ]
        if tiger_flops:
            lines += ceiling_lines(peak, tiger_flops, tiger_rate, converged_samples(ROOT / "leaderboards"))
        write_block(Path(args.out), "family_throughput", "\n".join(lines))
    # The cost reads the archive only: its own block, so `--cost-only` leaves the measured
    # throughput above as it was.
    lines = [
        "## What the committed boards cost",
        "",
        *header,
        "From the results archive (`leaderboards/results/`): the runs each board shows (its profile), "
        "fitting (tokenizer + recommender, validation included; a resumed fit counts every process) and "
        "ranking the test cases, in hours of the machine that ran them (one process per run, two runs at "
        "a time on the 2-core CPU).",
        "",
        tabulate(cost, headers=COST_HEADERS, tablefmt="github"),
        "",
        *converged_lines(ROOT / "leaderboards"),
    ]
    write_block(Path(args.out), "board_cost", "\n".join(lines))
    print(f"wrote {args.out}")


def provenance(started: datetime.datetime, load: tuple[float, float, float]) -> list[str]:
    """The lines that say how, when and where a block was produced."""
    versions = package_versions()
    return [
        "Written by `benchmarks/family_throughput.py` (this part of the page); numbers are as measured, "
        "never edited.",
        "",
        f"- command: `{' '.join(['.venv/bin/python', 'benchmarks/family_throughput.py', *sys.argv[1:]])}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}, one thread (`torch.set_num_threads(1)`)",
        f"- load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in load)}; at end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "- packages: " + ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "genrec-bench")),
        "",
    ]


if __name__ == "__main__":
    main()
