"""Item cold-start split, intervals, significance marks and plots."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.dataset import prepare
from benchmark.data.splits import make_split
from benchmark.data.synthetic import make_synthetic
from benchmark.errors import BenchmarkError
from benchmark.evaluation.statistics import bootstrap_interval, paired_bootstrap_pvalue
from benchmark.leaderboard import build_tables, render
from benchmark.store import Store


@pytest.fixture(scope="module")
def data():
    return prepare(make_synthetic(n_users=400, n_items=200, seed=2))


def _cold(split) -> np.ndarray:
    ids = {item: i for i, item in enumerate(split.dataset.item_ids)}
    return np.array(sorted(ids[i] for i in split.info["cold_items"]))


def test_cold_items_never_train_and_only_appear_as_valid_or_test_targets(data):
    split = make_split("cold-items", data)
    cold = _cold(split)
    assert len(cold) == pytest.approx(0.1 * data.n_items, abs=2)
    train_items = np.concatenate(split.train)
    assert not np.isin(cold, train_items).any()
    assert (split.train_counts[cold] == 0).all()
    for cases in (split.valid, split.test):
        assert not any(np.isin(h, cold).any() for h in cases.histories)
        assert (cases.cold == np.isin(cases.targets, cold)).all()
    # every interaction with a cold item is a case (unless its user had no earlier warm item)
    cold_targets = np.concatenate([split.valid.targets[split.valid.cold], split.test.targets[split.test.cold]])
    events = sum(int(np.isin(s[1:], cold).sum()) for s in data.sequences)
    assert len(cold_targets) >= 0.9 * events
    # half each, by time (up to cases dropped for lack of an earlier warm item)
    assert abs(int(split.test.cold.sum()) - int(split.valid.cold.sum())) <= 0.1 * len(cold_targets)
    assert split.valid.timestamps[split.valid.cold].max() <= split.test.timestamps[split.test.cold].min()


def test_cold_items_are_spread_over_popularity(data):
    split = make_split("cold-items:share=0.2", data)
    counts = np.zeros(data.n_items)
    for seq in data.sequences:
        np.add.at(counts, seq, 1)
    cold = _cold(split)
    median = np.median(counts)
    assert (counts[cold] > median).sum() >= 0.3 * len(cold)
    assert (counts[cold] <= median).sum() >= 0.3 * len(cold)


def test_cold_items_split_is_seeded_and_recorded(data):
    a, b = make_split("cold-items", data), make_split("cold-items", data)
    c = make_split("cold-items:seed=7", data)
    assert a.info["cold_items"] == b.info["cold_items"] and a.digest == b.digest
    assert a.info["cold_items"] != c.info["cold_items"]
    assert a.info["seed"] == 0 and c.info["seed"] == 7 and a.info["share"] == 0.1
    with pytest.raises(BenchmarkError, match="unknown option 'size'"):
        make_split("cold-items:size=3", data)


def test_warm_cases_follow_leave_one_out_on_warm_items(data):
    split = make_split("cold-items", data)
    cold = set(_cold(split).tolist())
    warm_test = split.test.users[~split.test.cold]
    for case in np.flatnonzero(~split.test.cold)[:20]:
        user = split.test.users[case]
        warm_seq = [i for i in data.sequences[user] if i not in cold]
        assert split.test.targets[case] == warm_seq[-1]
    assert len(set(warm_test.tolist())) == len(warm_test)


def test_intervals_shrink_as_cases_grow():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 1000, 10000):
        low, high = bootstrap_interval(rng.random(n) < 0.1)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert bootstrap_interval(np.array([])) is None
    low, high = bootstrap_interval(np.full(50, 0.3))
    assert low == pytest.approx(0.3) and high == pytest.approx(0.3)


def test_paired_test_detects_real_differences_only():
    rng = np.random.default_rng(1)
    base = (rng.random(2000) < 0.2).astype(float)
    better = np.where(rng.random(2000) < 0.15, 1.0, base)
    assert paired_bootstrap_pvalue(better, base) < 0.01
    noise = np.where(rng.random(2000) < 0.02, 1.0 - base, base)
    assert paired_bootstrap_pvalue(base, base) == 1.0
    assert paired_bootstrap_pvalue(noise, base) > 0.05 or abs(noise.mean() - base.mean()) > 0.005


def _row(method, seed, ranks, cold, baseline, run_id):
    from benchmark.data.splits import subset_masks
    from benchmark.evaluation.metrics import summarise

    ranks = np.asarray(ranks)
    groups = np.zeros(len(ranks), int)
    new_user = np.zeros(len(ranks), bool)
    masks = subset_masks(cold, new_user, groups)
    return {
        "id": run_id, "created_at": f"2026-01-01T00:00:{run_id:02d}", "method": method, "seed": seed,
        "profile": "tiny", "exclude_seen": True,
        "tuned_trials": 0, "params": {}, "backbone": "b", "metrics": summarise(ranks, masks),
        "ranks": ranks.tolist(),
        "case_labels": {"cold": cold.astype(int).tolist(), "new_user": new_user.astype(int).tolist(),
                        "group": groups.tolist()},
        "extra_metrics": {}, "infer_seconds_per_1k": 0.1, "train_seconds": 1.0,
        "info": {"baseline": baseline},
    }


def test_leaderboard_marks_significance_counts_and_small_subsets():
    rng = np.random.default_rng(3)
    n = 600
    cold = np.zeros(n, bool)
    cold[:40] = True  # a small cold subset: flagged
    weak = np.where(rng.random(n) < 0.1, 0, -1)
    strong = np.where(rng.random(n) < 0.3, 0, -1)
    rows = [
        _row("base", 0, weak, cold, True, 1),
        _row("base", 1, weak, cold, True, 2),
        _row("new", 0, strong, cold, False, 3),
        _row("new", 1, strong, cold, False, 4),
    ]
    tables = build_tables(rows)
    header = tables["header"]
    assert "All N@10 (n=600)" in header and "Cold N@10 (n=40<100)" in header
    new = next(line for line in tables["main"] if line[0] == "new")
    base = next(line for line in tables["main"] if line[0] == "base")
    column = header.index("All N@10 (n=600)")
    assert "*" in new[column] and "[" in new[column]
    assert "*" not in base[column] and "†" not in base[column]
    record = next(r for r in tables["csv"] if r["method"] == "new")
    assert record["all_ndcg@10_p_vs_best_baseline"] < 0.05
    assert record["all_ndcg@10_ci_low"] < record["all_ndcg@10_mean"] < record["all_ndcg@10_ci_high"]


def test_render_writes_plots_next_to_tables(tmp_path):
    from benchmark.cli import main

    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["run", "--dataset", "synthetic", "--split", "cold-items", "--methods", "pop",
                 "--seeds", "0", "--store", url, "--leaderboards", str(tmp_path), "--no-progress"]) == 0
    text = (tmp_path / "synthetic-cold-items.md").read_text()
    assert "strict item cold-start" in text and "Cold items:" in text
    assert (tmp_path / "synthetic-cold-items.png").stat().st_size > 1000
    assert (tmp_path / "synthetic-cold-items-groups.png").stat().st_size > 1000
    assert render(Store(url), "synthetic", "loo", tmp_path) is None
