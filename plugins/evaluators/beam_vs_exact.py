"""What beam search loses on the test cases: the run's beam-search ranking against exact scoring.

For a recommender ranked by constrained beam search (one that declares the ``scoring``
parameter and runs with ``scoring=beam``: ``seq2seq``, ``decoder``, ``llm``) or by RPG's
graph-constrained decoding (``rpg`` with ``scoring=graph``), the same fitted weights rank
the test cases once more with ``scoring=exact`` (every item's summed identifier
log-probability, :mod:`benchmark.nn.exact_scoring`; RPG's summed digit log-probabilities),
seen items treated as in the run. "Beam" below is the run's own decoding, beam or graph.
Stored per run (``beam_vs_exact/...``):

- ``same_set@20`` / ``same_order@20``: share of test cases whose beam top-20 equals the
  exact top-20 as a set / in order;
- ``held@20``: mean share of the exact top-20 that the beam top-20 holds;
- ``exact_ndcg@10``, ``exact_recall@10`` and their difference from the run's (beam)
  numbers, ``ndcg@10_diff`` and ``recall@10_diff`` (exact - beam), subset ``all``;
- ``exact_seconds_per_1k``: the exact ranking's seconds per 1,000 test users.

Exact scoring costs 10-900 s per 1,000 users at the `cpu` size (every item's identifier
through the decoder), so a split with more than :data:`CASES` test cases (ml-100k
`cold-items`: 5,847) is compared on a fixed sample of that many (the same cases for every
method and seed, :func:`benchmark.data.splits.fixed_sample`), both rankings' numbers on
those cases; ``cases`` then says how many. ml-100k `loo` (943 cases) is compared whole.

It reads the test cases once more but decides nothing: no number of it selects a model or
a parameter. Other recommenders (and runs already ranked exactly) get nothing.
"""

from __future__ import annotations

import numpy as np

from benchmark import hookimpl
from benchmark.components import EvaluationInput, EvaluatorSpec
from benchmark.data.splits import fixed_sample
from benchmark.evaluation.evaluator import evaluate
from benchmark.evaluation.metrics import summarise

K = 20
APPROXIMATE = ("beam", "graph")  # the decodings compared with exact scoring
CASES = 1000  # at most this many test cases are ranked again exactly


def agreement(beam: np.ndarray, exact: np.ndarray, k: int = K) -> dict[str, float]:
    """How two rankings' top-``k`` lists agree, case by case (``-1`` marks an empty slot)."""
    beam, exact = beam[:, :k], exact[:, :k]
    sets = [(set(b[b >= 0].tolist()), set(e[e >= 0].tolist())) for b, e in zip(beam, exact)]
    return {f"same_set@{k}": float(np.mean([b == e for b, e in sets])),
            f"same_order@{k}": float((beam == exact).all(axis=1).mean()),
            f"held@{k}": float(np.mean([len(b & e) / max(1, len(e)) for b, e in sets]))}


def beam_vs_exact(data: EvaluationInput) -> dict[str, float]:
    recommender = data.recommender
    params = getattr(recommender, "params", None)
    if not isinstance(params, dict) or params.get("scoring") not in APPROXIMATE or data.context is None:
        return {}
    decoding = params["scoring"]
    index = fixed_sample(len(data.test), CASES)
    cases = data.test.subset(index)
    params["scoring"] = "exact"
    try:
        exact = evaluate(recommender, cases, data.data.n_items, data.context.keep_seen, desc="test exact",
                         progress=data.context.progress, name="evaluator 'beam_vs_exact'")
    finally:
        params["scoring"] = decoding
    beam_metrics = summarise(data.ranks[index], cases.masks())["all"]
    exact_metrics = exact.metrics["all"]
    out = agreement(data.rankings[index], exact.rankings)
    if len(index) < len(data.test):
        out["cases"] = float(len(index))
    for metric in ("ndcg@10", "recall@10"):
        out[f"exact_{metric}"] = float(exact_metrics[metric])
        out[f"{metric}_diff"] = float(exact_metrics[metric] - beam_metrics[metric])
    out["exact_seconds_per_1k"] = float(exact.seconds_per_1000)
    return out


@hookimpl
def register_evaluators(register) -> None:
    register(
        EvaluatorSpec(
            name="beam_vs_exact",
            evaluate=beam_vs_exact,
            description="beam search's (or RPG's graph decoding's) test top-20 against exact full-catalogue "
                        "scoring (agreement, metric difference) for recommenders ranked by beam or graph decoding",
        )
    )
