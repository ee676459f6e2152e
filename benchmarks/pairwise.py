"""Paired significance between methods on one board: mean per-case NDCG@10 (averaged over
each method's seeds, latest run per seed, runs of the board's profile only) and the paired
bootstrap p-value of each pair, on a subset of test cases (all, warm, cold).

    .venv/bin/python benchmarks/pairwise.py --split cold-items --subset cold --pairs setrec:setrec-no-sem,setrec:tiger
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmark.evaluation.metrics import per_case
from benchmark.evaluation.statistics import paired_bootstrap_pvalue
from benchmark.leaderboard import board_profile, current_digest
from benchmark.store import Store


def case_values(rows: list[dict], method: str, metric: str) -> tuple[np.ndarray, dict]:
    latest: dict[int, dict] = {}
    for row in rows:
        if row["method"] == method and not row["tuned_trials"]:
            latest[row["seed"]] = row  # rows come in id order: the last one per seed wins
    if not latest:
        raise SystemExit(f"no run of {method!r} on this board")
    runs = list(latest.values())
    values = np.mean([per_case(np.asarray(r["ranks"]))[metric] for r in runs], axis=0)
    return values, runs[0]["case_labels"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--split", default="loo")
    parser.add_argument("--subset", default="all")
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--pairs", required=True, help="a:b,c:d ...")
    parser.add_argument("--store", default="sqlite:///runs/results.db")
    parser.add_argument("--profile", help="runs of this profile only (default: the profile the board shows)")
    args = parser.parse_args()
    rows = Store(args.store).rows(dataset=args.dataset, split=args.split)
    digest = current_digest(rows)
    rows = [r for r in rows if r["split_digest"] == digest]
    profile = args.profile or board_profile(rows)
    rows = [r for r in rows if r["profile"] == profile]  # never mix budgets in one comparison
    for pair in args.pairs.split(","):
        a, b = pair.split(":")
        va, labels = case_values(rows, a, args.metric)
        vb, _ = case_values(rows, b, args.metric)
        cold = np.asarray(labels["cold"], bool)
        masks = {"all": np.ones(len(va), bool), "warm": ~cold, "cold": cold}
        if args.subset not in masks:
            raise SystemExit(f"--subset {args.subset!r}: give one of {', '.join(masks)}")
        mask = masks[args.subset]
        p = paired_bootstrap_pvalue(va[mask], vb[mask])
        print(f"{args.split} {profile} {args.subset} (n={int(mask.sum())}) {args.metric}: {a} {va[mask].mean():.4f} vs "
              f"{b} {vb[mask].mean():.4f}, paired bootstrap p={p:.3f}")


if __name__ == "__main__":
    main()
