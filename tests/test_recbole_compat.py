"""RecBole 1.2.1 shims and the RecBole plugin's own guarantees."""

from __future__ import annotations

import os

import numpy as np
import torch

from benchmark.recbole_compat import NUMPY_ALIASES, import_recbole
from benchmark.runner import RunRequest, execute, fit


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


def test_item_embeddings_are_the_trained_item_table_in_our_item_order(tmp_path):
    fitted = fit(RunRequest("synthetic", "loo", "sasrec-ce", params={"recommender.epochs": 1}), tmp_path, False)
    recommender = fitted.recommender
    embeddings = recommender.item_embeddings()
    assert embeddings.shape == (fitted.split.n_items, recommender.params["embedding_size"])
    table = recommender.model.item_embedding.weight.detach().numpy()
    for item in (0, 7, fitted.split.n_items - 1):
        assert np.array_equal(embeddings[item], table[recommender.recbole_item_of[item]])
