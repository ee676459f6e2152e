"""What beam search loses: a generative method's test ranking by beam search against exact scoring.

For one method configuration (a stored run's, or a method's profile defaults with
``--param`` overrides), fits the method once and ranks every test case twice with the same
weights: by constrained beam search (``scoring=beam``, the boards' ranking) and by exact
full-catalogue scoring (``scoring=exact``: every item's whole identifier log-probability,
:mod:`benchmark.nn.exact_scoring`), seen items excluded both ways. Reports:

- how often beam search's top-20 equals the exact top-20 as a set, and in order;
- the mean share of the exact top-20 that beam search's top-20 holds;
- R@10 and N@10 (and @20) of both rankings and their difference (exact - beam);
- ranking seconds per 1,000 users of both.

Run from the repository root; the method must use a token-sequence recommender (``seq2seq``,
``llm``, ``decoder``)::

    .venv/bin/python benchmarks/exact_vs_beam.py --dataset ml-100k --method tiger --profile cpu
    .venv/bin/python benchmarks/exact_vs_beam.py --store sqlite:///runs/results.db --dataset ml-100k \\
        --method tiger --profile cpu --seed 0    # the stored run's parameters

``--out FILE`` also writes the results as a Markdown page, numbers as measured.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import torch
from tabulate import tabulate

from benchmark.evaluation.evaluator import evaluate
from benchmark.params import parse_assignments
from benchmark.runner import RunRequest, fit, machine
from benchmark.store import Store
from plugins.evaluators.beam_vs_exact import agreement

K = 20


def stored_request(args: argparse.Namespace) -> RunRequest:
    """The request of the first stored run of ``--method`` on ``--dataset``/``--split`` (with
    ``--profile`` and ``--seed`` where given): its parameters, seed, profile and protocol."""
    rows = Store(args.store, create=False).rows(dataset=args.dataset, split=args.split, method=args.method,
                                                 profile=args.profile, seed=args.seed)
    if not rows:
        sys.exit(f"error: --store {args.store} holds no run of {args.method} on {args.dataset} {args.split}"
                 f"{f' ({args.profile})' if args.profile else ''}")
    row = rows[0]
    info = row.get("info") or {}
    return RunRequest(row["dataset"], row["split"], row["method"], seed=row["seed"], profile=row["profile"],
                      params={**row["params"], **parse_assignments(args.param)},
                      keep_seen=not row["exclude_seen"], k_core=info.get("k_core", 5),
                      max_history=info.get("max_history", 20))


def compare(request: RunRequest, cache: str, progress: bool) -> dict:
    fitted = fit(request, cache, progress)
    recommender, split = fitted.recommender, fitted.split
    if "scoring" not in getattr(recommender, "params", {}):
        sys.exit(f"error: method {request.method!r}: its recommender declares no 'scoring' parameter; give a "
                 "method of seq2seq, llm or decoder")
    runs = {}
    for scoring in ("beam", "exact"):
        recommender.params["scoring"] = scoring
        runs[scoring] = evaluate(recommender, split.test, split.n_items, request.keep_seen,
                                 desc=f"test {scoring}", progress=progress, name=request.method)
    agree = agreement(runs["beam"].rankings, runs["exact"].rankings, K)
    return {"cases": len(runs["beam"].rankings), "same_set": agree[f"same_set@{K}"],
            "same_order": agree[f"same_order@{K}"], "held": agree[f"held@{K}"],
            "metrics": {s: runs[s].metrics["all"] for s in runs},
            "seconds_per_1000": {s: runs[s].seconds_per_1000 for s in runs},
            "backbone": recommender.backbone(), "epochs": len(fitted.run.state.get("epochs", []))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", default="loo")
    parser.add_argument("--method", default="tiger")
    parser.add_argument("--profile", default=None, help="default: the stored run's, else tiny")
    parser.add_argument("--seed", type=int, default=None, help="default: the stored run's, else 0")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE (recommender.epochs=5)")
    parser.add_argument("--store", help="take the configuration of a stored run from this results store URL")
    parser.add_argument("--cache", help="artifact cache (default: a temporary folder)")
    parser.add_argument("--out", help="also write the results to this Markdown file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.store:
        request = stored_request(args)
    else:
        request = RunRequest(args.dataset, args.split, args.method, seed=args.seed or 0,
                             profile=args.profile or "tiny", params=parse_assignments(args.param))
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory() as temporary:
        result = compare(request, args.cache or temporary, not args.no_progress)
    metrics = result["metrics"]
    table = [[name, *(f"{metrics[s][name]:.4f}" for s in ("beam", "exact")),
              f"{metrics['exact'][name] - metrics['beam'][name]:+.4f}"]
             for name in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")]
    table.append(["seconds / 1k users", *(f"{result['seconds_per_1000'][s]:.1f}" for s in ("beam", "exact")), ""])
    lines = [
        f"# Beam search against exact scoring: {request.method} on {request.dataset} {request.split}",
        "",
        "Written by `benchmarks/exact_vs_beam.py`; numbers are as measured, never edited.",
        "",
        f"- command: `{' '.join(['.venv/bin/python', 'benchmarks/exact_vs_beam.py', *sys.argv[1:]])}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; machine: {machine()}, {torch.get_num_threads()} threads",
        f"- profile {request.profile}, seed {request.seed}, {result['backbone']}, {result['epochs']} epochs; "
        f"seen items {'kept' if request.keep_seen else 'excluded'}",
        f"- test cases: {result['cases']}; beam search's top-{K} equals the exact top-{K} as a set for "
        f"{result['same_set']:.1%} of them, in order for {result['same_order']:.1%}; it holds "
        f"{result['held']:.1%} of the exact top-{K} on average",
        "",
        tabulate(table, headers=["", "beam", "exact", "exact - beam"], tablefmt="github"),
        "",
    ]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
