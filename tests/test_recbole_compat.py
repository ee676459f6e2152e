"""RecBole 1.2.1 shims and the RecBole plugin's own guarantees."""

from __future__ import annotations

import os

import numpy as np
import torch

from benchmark.components import FitContext, RunInfo, TrainingData
from benchmark.runner import RunRequest, execute, load_split
from plugins.recommenders.recbole import cf_embeddings
from plugins.recommenders.recbole_compat import NUMPY_ALIASES, import_recbole


def test_shims_make_recbole_importable_and_fast():
    import_recbole()
    for name in NUMPY_ALIASES:
        assert hasattr(np, name)
    from scipy.sparse import dok_matrix

    assert hasattr(dok_matrix, "_update")
    # recbole.model.sequential_recommender.sine switches anomaly detection on at import
    assert not torch.is_anomaly_enabled()


def test_recbole_leaves_no_folders_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    execute(RunRequest("synthetic", "loo", "lightgcn", params={"recommender.epochs": 1}),
            cache_dir=tmp_path / "cache", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["cache"]


def test_cf_embeddings_are_cached_and_fitted_on_training_only(tmp_path):
    split = load_split("synthetic", "loo")
    data = TrainingData.from_split(split)
    context = FitContext(
        run=RunInfo("synthetic", "loo", "cf", {}, 0, "tiny"), seed=0, profile="tiny",
        cache_dir=str(tmp_path), validate=lambda model: {"ndcg@10": 0.0},
        epoch_end=lambda epoch, metrics: None, progress=False,
    )
    first = cf_embeddings(data, context)
    assert first.shape[0] == split.n_items
    files = list((tmp_path / "cf").glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = cf_embeddings(data, context)
    assert np.array_equal(first, second)
    assert files[0].stat().st_mtime_ns == mtime
