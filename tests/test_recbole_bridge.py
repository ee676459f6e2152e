"""The RecBole plugin's own guarantees: the reported model is the epoch validation chose,
users without training interactions are folded in, SASRec trains on whole windows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmark.components import CaseBatch, ItemIdentifiers, RunInfo, TrainingData
from benchmark.errors import PluginError
from benchmark.params import resolve
from benchmark.runner import RunRequest, fit, load_split, make_context
from plugins.recommenders import recbole
from plugins.recommenders.recbole import (
    PARAMS,
    NegativeSampler,
    RecBoleRecommender,
    training_windows,
    transformer_outputs,
)

# Learning rates high enough that validation peaks early on the synthetic data, so early
# stopping keeps an epoch before the last.
OVERSHOOT = {
    "lightgcn": {"recommender.epochs": 12, "recommender.patience": 2, "recommender.learning_rate": 0.05},
    "sasrec-ce": {"recommender.epochs": 12, "recommender.patience": 2, "recommender.learning_rate": 0.01},
}


@pytest.mark.parametrize("method", sorted(OVERSHOOT))
def test_restored_model_scores_like_the_epoch_early_stopping_chose(method, tmp_path):
    fitted = fit(RunRequest("synthetic", "loo", method, params=OVERSHOOT[method]), tmp_path, progress=False)
    model = fitted.recommender
    assert model.best_epoch < model.epochs_trained, "the test needs a best epoch before the last"
    chosen = fitted.run.state["epochs"][model.best_epoch - 1]
    fresh = fitted.context.validate(model)
    assert fresh["ndcg@10"] == chosen["ndcg@10"]
    assert fresh["recall@10"] == chosen["recall@10"]


def test_only_caches_recomputed_when_none_are_cleared():
    model = torch.nn.Module()
    model.other_parameter_name = ["restore_user_e", "restore_item_e", "i_embedding", "interaction_matrix", "w"]
    for name in model.other_parameter_name:
        setattr(model, name, torch.ones(2))
    recbole.clear_propagation_caches(model)
    assert model.restore_user_e is None and model.restore_item_e is None and model.i_embedding is None
    assert model.interaction_matrix is not None and model.w is not None


# ---------------------------------------------------------------- users new to training


def _fit_without_users(
    model_name: str, users: list[int], tmp_path, **params
) -> tuple[RecBoleRecommender, TrainingData]:
    """``model_name`` fitted on synthetic loo with ``users``' training interactions removed."""
    split = load_split("synthetic", "loo")
    data = TrainingData.from_split(split)
    train = [np.zeros(0, np.int64) if u in users else seq for u, seq in enumerate(data.train)]
    stamps = [np.zeros(0) if u in users else t for u, t in enumerate(data.train_timestamps)]
    data = dataclasses.replace(data, train=train, train_timestamps=stamps)
    overrides = {"model": model_name, "loss_type": "BPR", "epochs": 2, **params}
    recommender = RecBoleRecommender(resolve(PARAMS, "tiny", overrides, "recbole"), seed=0)
    run = RunInfo("synthetic", "loo", "recbole", overrides, 0, "tiny")
    recommender.fit(data, ItemIdentifiers("atomic", data.n_items), make_context(run, data, tmp_path, progress=False))
    return recommender, data


def _batch(users: list[int], histories: list[list[int]]) -> CaseBatch:
    histories = [np.asarray(h, np.int64) for h in histories]
    return CaseBatch(users=np.asarray(users), histories=histories, seen=histories)


@pytest.mark.parametrize("model_name", ["LightGCN", "BPR"])
def test_users_new_to_training_are_folded_in_from_their_history(model_name, tmp_path):
    recommender, data = _fit_without_users(model_name, [3, 7], tmp_path)
    assert recommender.recbole_user_of[3] == 0 and recommender.recbole_user_of[7] == 0
    first, second = [0, 5, 9], [40, 41, 60, 2]
    scores = recommender.score(_batch([3, 7, 1], [first, second, list(data.train[1])]))
    assert not np.allclose(scores[0], scores[1])

    model = recommender.model
    with torch.no_grad():
        items = model.forward()[1] if model_name == "LightGCN" else model.item_embedding.weight
        items = items[torch.as_tensor(recommender.recbole_item_of)]  # our item order
        expected = (items[torch.as_tensor(first)].mean(0) @ items.T).numpy()
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5, atol=1e-6)


def test_a_model_without_item_table_names_itself_for_new_users(tmp_path):
    # The first validation scores user 3's validation case and fails there, during fitting.
    with pytest.raises(PluginError, match="Pop cannot serve users without training interactions"):
        _fit_without_users("Pop", [3], tmp_path, epochs=1)


# ---------------------------------------------------------------- SASRec on windows


def test_windows_cover_every_transition_once_latest_window_full():
    inputs, targets, owners = training_windows([np.arange(1, 8), np.arange(10, 15), np.array([20])], 3)
    assert inputs.tolist() == [[4, 5, 6], [1, 2, 3], [11, 12, 13], [10, 0, 0]]
    assert targets.tolist() == [[5, 6, 7], [2, 3, 4], [12, 13, 14], [11, 0, 0]]
    assert owners.tolist() == [0, 0, 1, 1]
    pairs = {(a, b) for row_in, row_out in zip(inputs, targets) for a, b in zip(row_in, row_out) if b}
    assert pairs == {(i, i + 1) for i in range(1, 7)} | {(i, i + 1) for i in range(10, 14)}


def test_negatives_are_uniform_over_the_items_the_user_has_not_seen():
    sampler = NegativeSampler([np.arange(1, 9), np.array([1]), np.array([2, 5, 5])], n_items=10)
    rng = np.random.default_rng(0)
    assert set(sampler.sample(np.zeros(500, np.int64), rng).tolist()) == {9}
    assert set(sampler.sample(np.ones(500, np.int64), rng).tolist()) == set(range(2, 10))
    counts = np.bincount(sampler.sample(np.full(7000, 2), rng), minlength=10)
    assert counts[[0, 2, 5]].sum() == 0
    assert counts[[1, 3, 4, 6, 7, 8, 9]].min() > 850  # 1000 expected each


def test_window_training_is_one_pass_per_window_batch_on_recboles_network(tmp_path, monkeypatch):
    calls = []
    original = recbole.transformer_outputs

    def counting(model, item_seq):
        calls.append(item_seq.shape)
        return original(model, item_seq)

    monkeypatch.setattr(recbole, "transformer_outputs", counting)
    request = RunRequest("synthetic", "loo", "sasrec-ce", params={"recommender.epochs": 1,
                                                                 "recommender.batch_size": 180}, max_history=6)
    fitted = fit(request, tmp_path, progress=False)

    windows = len(training_windows(fitted.data.train, 6)[0])
    assert len(calls) == -(-windows // 30)  # 180 positions per batch: 30 windows of 6
    assert {shape[1] for shape in calls} == {6}
    model = fitted.recommender.model
    assert model.position_embedding.num_embeddings == 6  # max_history, not RecBole's 50 or our old 20

    # The per-position output is RecBole's forward at every length: scoring sees one network.
    model.eval()
    item_seq = torch.as_tensor([[5, 9, 2, 7, 0, 0], [1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        every = transformer_outputs(model, item_seq)
        for length in range(1, 7):
            last = model.forward(item_seq, torch.as_tensor([min(length, 4), length]))
            torch.testing.assert_close(every[[0, 1], [min(length, 4) - 1, length - 1]], last)
