"""Paired significance between methods on one board, pair by pair: a thin call of
``genrec-bench compare`` (:mod:`benchmark.compare`), kept for the commands the reading
notes cite. Prefer ``genrec-bench compare A B [C ...] --split S --subset X``.

    .venv/bin/python benchmarks/pairwise.py --split cold-items --subset cold --pairs setrec:setrec-no-sem,setrec:tiger
"""

from __future__ import annotations

import argparse

from benchmark.compare import compare
from benchmark.store import Store


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
    store = Store(args.store)
    for pair in args.pairs.split(","):
        a, b = pair.split(":")
        (c,), profile = compare(store, args.dataset, args.split, [a, b], args.subset, args.metric, args.profile)
        print(f"{args.split} {profile} {c.subset} (n={c.cases}) {c.metric}: {a} {c.mean_a:.4f} vs "
              f"{b} {c.mean_b:.4f}, paired bootstrap p={c.p_value:.3f}")


if __name__ == "__main__":
    main()
