"""Paired comparison of stored methods on one board: ``genrec-bench compare A B [C ...]``.

Each method's per-case metric is averaged over its seeds (the board's row: the latest
configuration, latest run per seed, runs of the board's split digest and profile only),
then every pair is compared on the same test cases of one subset: the mean difference with
its 95% percentile bootstrap interval and the two-sided paired bootstrap p-value, the
test behind the boards' ``*`` / ``†`` marks (:mod:`benchmark.evaluation.statistics`).

That test resamples cases, not seeds: it cannot see how far a method's own seeds fall
apart. So each pair also reports the range of A - B over every pairing of one seed of A
with one seed of B (:func:`seed_pair_gaps`); a gap with p < 0.05 whose seed-pair range
straddles zero is within the seeds' spread, and the output says so under the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from benchmark.data.splits import POPULARITY_GROUPS
from benchmark.errors import BenchmarkError
from benchmark.evaluation.statistics import bootstrap_interval, paired_bootstrap_pvalue
from benchmark.leaderboard import SIGNIFICANCE, Entry, _entries, _masks, board_profile, current_digest, variant_suffix
from benchmark.store import Store

TUNED = "@tuned"
METRIC_NAMES = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20")


class CompareError(BenchmarkError):
    """A comparison that cannot be made: no such board, method, subset or metric."""


@dataclass
class Comparison:
    """``a`` against ``b`` on ``cases`` test cases of ``subset``: their means, the mean
    difference ``a - b`` with its 95% bootstrap interval, and the paired bootstrap p-value."""

    a: str
    b: str
    subset: str
    metric: str
    cases: int
    mean_a: float
    mean_b: float
    difference: float
    interval: tuple[float, float]
    p_value: float
    seeds_a: int
    seeds_b: int
    seed_gaps: tuple[float, float]

    @property
    def within_seed_spread(self) -> bool:
        """Significant over cases, yet some pairing of single seeds reverses or erases the gap."""
        low, high = self.seed_gaps
        return self.p_value < SIGNIFICANCE and low <= 0.0 <= high

    def row(self) -> list[str]:
        return [self.a, self.b, f"{self.subset} (n={self.cases})", f"{self.mean_a:.4f}", f"{self.mean_b:.4f}",
                f"{self.difference:+.4f} [{self.interval[0]:+.4f}, {self.interval[1]:+.4f}]",
                f"{self.p_value:.3f}", f"{self.seeds_a}/{self.seeds_b}",
                f"[{self.seed_gaps[0]:+.4f}, {self.seed_gaps[1]:+.4f}]" + (" ~" if self.within_seed_spread else "")]


HEADER = ["A", "B", "Subset", "A mean", "B mean", "A - B [95% CI]", "p", "Seeds A/B", "Seed-pair A - B"]


def seed_means(run_cases: list[dict[str, np.ndarray]], metric: str, mask: np.ndarray) -> list[float]:
    """Each run's (seed's) mean of ``metric`` over the cases of ``mask``, from its per-case
    values (``Entry.run_cases``)."""
    return [float(cases[metric][mask].mean()) for cases in run_cases]


def seed_pair_gaps(means_a: list[float], means_b: list[float]) -> list[float]:
    """``A - B`` for every pairing of one seed's mean of A with one of B (:func:`seed_means`),
    sorted: its ends show whether the seed-averaged gap survives any single draw."""
    return sorted(a - b for a in means_a for b in means_b)


def _label(entry: Entry) -> str:
    return entry.first["method"] + variant_suffix(entry.first) + (TUNED if entry.first["tuned_trials"] else "")


def board_entries(store: Store, dataset: str, split: str, profile: str | None = None) -> tuple[list[Entry], str]:
    """The rows of the board of ``dataset`` / ``split`` (its current split digest, the given
    profile or the one the board shows), each labelled ``method``, ``method@tuned`` or, for a
    variant stored with ``run --variant``, ``method[variant]``."""
    rows = store.rows(dataset=dataset, split=split)
    if not rows:
        raise CompareError(f"the store holds no run of dataset {dataset!r} with split {split!r}; "
                           "`genrec-bench run` stores some first")
    rows.sort(key=lambda r: (r["created_at"], r["id"]))
    digest = current_digest(rows)
    rows = [r for r in rows if r["split_digest"] == digest]
    chosen = profile or board_profile(rows)
    kept = [r for r in rows if r["profile"] == chosen]  # never mix budgets in one comparison
    if not kept:
        profiles = sorted({r["profile"] for r in rows})
        raise CompareError(f"--profile {chosen!r}: the {dataset} {split} board has runs of profile(s) "
                           f"{', '.join(profiles)} only")
    entries, _ = _entries(kept)
    return entries, chosen


def compare(store: Store, dataset: str, split: str, methods: list[str], subset: str = "all",
            metric: str = "ndcg@10", profile: str | None = None) -> tuple[list[Comparison], str]:
    """Every pair of ``methods`` (in the order given) on ``subset``; also the profile used."""
    if len(methods) < 2:
        raise CompareError("compare needs at least two methods, e.g. `genrec-bench compare tiger pop`")
    if metric not in METRIC_NAMES:
        raise CompareError(f"--metric {metric!r}: give one of {', '.join(METRIC_NAMES)}")
    entries, chosen = board_entries(store, dataset, split, profile)
    by_label = {_label(e): e for e in entries}
    missing = [m for m in methods if m not in by_label]
    if missing:
        raise CompareError(f"no {chosen!r} run of {', '.join(repr(m) for m in missing)} on the {dataset} {split} "
                           f"board; its methods: {', '.join(sorted(by_label))} (a tuned row is METHOD{TUNED}, "
                           "a variant METHOD[VARIANT])")
    masks = _masks(entries[0].first)
    if subset not in masks:
        raise CompareError(f"--subset {subset!r}: give one of {', '.join(masks)}")
    mask = masks[subset]
    if not mask.any():
        raise CompareError(f"--subset {subset!r}: the {dataset} {split} board has no {subset} test case; "
                           f"subsets with cases: {', '.join(s for s, m in masks.items() if m.any())}")
    means = {m: seed_means(by_label[m].run_cases, metric, mask) for m in methods}  # once per method, not per pair
    out = []
    for a, b in combinations(methods, 2):
        ea, eb = by_label[a], by_label[b]
        va, vb = ea.per_case[metric][mask], eb.per_case[metric][mask]
        difference = va - vb
        interval = bootstrap_interval(difference)
        gaps = seed_pair_gaps(means[a], means[b])
        out.append(Comparison(a, b, subset, metric, int(mask.sum()), float(va.mean()), float(vb.mean()),
                              float(difference.mean()), interval, paired_bootstrap_pvalue(va, vb),
                              len(ea.runs), len(eb.runs), (gaps[0], gaps[-1])))
    return out, chosen


def subsets_help() -> str:
    return ", ".join(["all", "warm", "cold", "new-user", *POPULARITY_GROUPS])


def comparison_records(comparisons: list[Comparison]) -> list[dict[str, Any]]:
    return [dict(c.__dict__, interval=list(c.interval), seed_gaps=list(c.seed_gaps),
                 within_seed_spread=c.within_seed_spread) for c in comparisons]

