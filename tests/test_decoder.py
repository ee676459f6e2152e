"""The ``decoder`` recommender (tiger-decoder): training windows cover every target once per
epoch, one forward pass supervises every item boundary of a window, the loss is those
tokens' cross-entropy, it learns planted chains, and its faults fail in one line."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from conftest import one_error_line

from benchmark import plugins
from benchmark.cli import main
from benchmark.components import ItemIdentifiers, TrainingData
from benchmark.errors import PluginError
from benchmark.nn.sequences import training_windows, window_count
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute, load_split
from plugins.recommenders.decoder import START, DecoderRecommender

SIZE = {"d_model": 32, "heads": 2, "head_dim": 16, "d_ff": 64, "layers": 2, "dropout": 0.0}


def _recommender(identifiers: ItemIdentifiers, **overrides) -> DecoderRecommender:
    spec = plugins.get_recommenders()["decoder"]
    recommender = DecoderRecommender(resolve(spec.params, "tiny", {**SIZE, **overrides}, "decoder"), seed=0)
    recommender.device = torch.device("cpu")
    torch.manual_seed(0)
    recommender._build(identifiers)
    return recommender


def _data() -> tuple[TrainingData, ItemIdentifiers]:
    data = TrainingData.from_split(load_split("synthetic", "loo", max_history=5))
    n = data.n_items
    identifiers = ItemIdentifiers(kind="codes", n_items=n, codes=np.stack([np.arange(n) % 7, np.arange(n) // 7,
                                                                           np.zeros(n, np.int64)], 1),
                                  vocab_sizes=(7, n // 7 + 1, 1))
    return data, identifiers


@pytest.mark.parametrize("span", [1, 3, 20])
def test_windows_supervise_every_target_once_per_epoch(span):
    train = [np.arange(n) for n in (0, 1, 2, 3, 7, 20, 21, 45)]
    for epoch in range(3):
        rows = training_windows(train, span, 0, seed=0, epoch=epoch, owner="test")
        assert len(rows) <= window_count(train, span, 0)
        targets = Counter()
        for user, end, supervised in rows.tolist():
            assert 1 <= supervised <= min(span, end)  # the window's first item is context only
            targets.update((user, t) for t in range(end - supervised + 1, end + 1))
        assert targets == Counter((u, t) for u, s in enumerate(train) for t in range(1, len(s)))
    shifts = {tuple(sorted(map(tuple, training_windows(train, span, 0, 0, epoch, "test").tolist())))
              for epoch in range(6)}
    assert len(shifts) > 1 or span == 1  # the cut moves between epochs


def test_windows_per_user_draw_full_windows_with_the_most_recent_among_them():
    train = [np.arange(41), np.arange(3), np.arange(2)]
    ends = set()
    for epoch in range(4):
        rows = training_windows(train, 4, 2, seed=0, epoch=epoch, owner="test")
        assert sorted(Counter(rows[:, 0].tolist()).items()) == [(0, 2), (1, 2), (2, 1)]
        assert all(supervised == min(4, end) for _, end, supervised in rows.tolist())  # full windows
        assert {(u, e) for u, e, _ in rows.tolist() if e == len(train[u]) - 1} == {(0, 40), (1, 2), (2, 1)}
        assert len(rows) == window_count(train, 4, 2) == 5
        ends |= {e for u, e, _ in rows.tolist() if u == 0}
    assert len(ends) > 2  # the earlier windows are drawn afresh
    with pytest.raises(PluginError, match="no user has two training items"):
        training_windows([np.arange(1)], 4, 0, 0, 0, "recommender 'decoder'")


def test_one_sequence_supervises_every_item_boundary_of_its_window():
    data, identifiers = _data()
    recommender = _recommender(identifiers, user_tokens=0)
    levels, span = 3, data.max_history
    user = next(u for u, s in enumerate(data.train) if len(s) > span + 2)
    sequence = data.train[user]
    rows = np.array([[user, span + 1, span], [user, 3, 2], [user, 2, 1]])  # full, part-supervised, short
    ids, mask, labels = recommender._batch(data, rows)
    window = sequence[1:span + 2]
    codes = recommender.code_table[torch.as_tensor(window)].reshape(-1)
    assert ids[0].tolist() == [START] + codes.tolist() and mask[0].all()
    # A full window: (items - 1) x levels supervised tokens, the codes of every item after the first.
    assert int((labels[0] != -100).sum()) == (len(window) - 1) * levels == span * levels
    assert labels[0, levels:].tolist() == codes[levels:].tolist() and (labels[0, :levels] == -100).all()
    # Items 0..3, the last two supervised: positions predicting items 2 and 3's codes.
    short = recommender.code_table[torch.as_tensor(sequence[:4])].reshape(-1)
    assert int((labels[1] != -100).sum()) == 2 * levels
    assert labels[1][labels[1] != -100].tolist() == short[2 * levels:].tolist()
    assert int(mask[1].sum()) == 1 + 4 * levels and int(mask[2].sum()) == 1 + 3 * levels
    assert (labels[2][labels[2] != -100] == recommender.code_table[int(sequence[2])]).all()


def test_loss_is_the_cross_entropy_of_the_supervised_code_tokens():
    data, identifiers = _data()
    recommender = _recommender(identifiers)
    recommender.model.eval()
    rows = np.array([[3, 5, 5], [8, 2, 2], [11, 4, 1]])
    ids, mask, labels = recommender._batch(data, rows)
    loss = float(recommender._loss(ids, mask, labels).detach())
    expected = []
    with torch.no_grad():
        for row in range(len(rows)):  # each window alone, unpadded
            length = int(mask[row].sum())
            logits = recommender.model(input_ids=ids[row:row + 1, :length]).logits[0, :-1]
            keep = labels[row, :length - 1] != -100
            expected.append(torch.nn.functional.cross_entropy(logits[keep], labels[row, :length - 1][keep],
                                                              reduction="none"))
    assert loss == pytest.approx(float(torch.cat(expected).mean()), rel=1e-5)


def test_tiger_decoder_learns_planted_chains_better_than_popularity(shared_cache):
    pop, _, _ = execute(RunRequest("synthetic", "loo", "pop"), shared_cache, False)
    params = {"recommender.d_model": 64, "recommender.heads": 2, "recommender.head_dim": 32,
              "recommender.d_ff": 128, "recommender.user_tokens": 0, "recommender.valid_cases": 100,
              "recommender.epochs": 6, "recommender.windows_per_user": 0}
    row, evaluation, split = execute(RunRequest("synthetic", "loo", "tiger-decoder", params=params), shared_cache,
                                     False)
    assert row["metrics"]["all"]["ndcg@10"] > 2 * pop["metrics"]["all"]["ndcg@10"]
    assert (evaluation.rankings >= 0).all()
    for ranking, seen in zip(evaluation.rankings, split.test.seen):
        assert not set(ranking.tolist()) & set(seen.tolist())
    assert row["backbone"].startswith("decoder-only 2L d64")


def test_text_identifiers_are_refused():
    with pytest.raises(PluginError, match="writes code identifiers"):
        _recommender(ItemIdentifiers(kind="text", n_items=2, texts=["a", "b"]))


@pytest.mark.parametrize(("param", "message"), [
    ("recommender.windows_per_user=-1", "parameter 'windows_per_user' is -1, outside its allowed range (0 or more)"),
    ("recommender.scoring=top", "recommender 'decoder': parameter 'scoring' is 'top'; give beam or exact"),
    ("recommender.schedule=linear", "recommender 'decoder': parameter 'schedule' is 'linear'; give cosine or "
     "constant"),
    ("recommender.beam_size=5", "parameter 'beam_size' is 5, outside its allowed range (20 or more)"),
    ("recommender.layers=0", "parameter 'layers' is 0, outside its allowed range (1 or more)"),
])
def test_parameter_faults_fail_in_one_line_before_fitting(param, message, tmp_path, capsys):
    code = main(["run", "--dataset", "synthetic", "--methods", "tiger-decoder", "--param", param,
                 "--store", f"sqlite:///{tmp_path}/r.db", "--leaderboards", str(tmp_path / "b"),
                 "--cache", str(tmp_path / "c"), "--no-progress"])
    assert code == 2
    assert message in one_error_line(capsys)


def test_cpu_profile_is_tigers_width_and_schedule_with_every_target_each_epoch():
    from benchmark.methods import resolve_method

    decoder = resolve_method("tiger-decoder", "cpu").recommender_params
    tiger = resolve_method("tiger", "cpu").recommender_params
    same = ("d_model", "heads", "head_dim", "d_ff", "dropout", "learning_rate", "schedule", "schedule_steps", "warmup",
            "epochs", "patience", "max_train_seconds", "valid_cases", "beam_size", "user_tokens")
    assert {name: decoder[name] for name in same} == {name: tiger[name] for name in same}
    assert (decoder["layers"], tiger["layers"]) == (4, 2)  # one stack as deep as seq2seq's 2+2
    assert decoder["windows_per_user"] == 0 and decoder["scoring"] == "beam"
    assert resolve_method("tiger-decoder", "tiny").recommender_params["windows_per_user"] == 1
