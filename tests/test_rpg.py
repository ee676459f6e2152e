"""RPG (Hou et al., KDD'25): parallel digits, every position trained, exact item scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_plugin

from benchmark import hookimpl
from benchmark.components import MethodSpec
from benchmark.nn.sequences import right_aligned
from benchmark.runner import RunRequest, execute
from plugins.recommenders.rpg import RPGModel, graph_decode, item_graph, sliding_windows, training_windows

PARAMS = {"layers": 2, "d_model": 16, "heads": 2, "head_dim": 8, "d_ff": 32, "dropout": 0.0, "digit_logits": "dot",
          "temperature": 0.07, "activation": "relu"}


def _model(codes: np.ndarray, vocab: tuple[int, ...], seed: int = 0, length: int = 6, **overrides) -> RPGModel:
    torch.manual_seed(seed)
    return RPGModel(codes, vocab, {**PARAMS, **overrides}, length).eval()


def test_windows_hold_every_transition_once_and_drop_single_items():
    train = [np.arange(10), np.array([3]), np.array([], np.int64), np.array([4, 5])]
    windows = training_windows(train, 4, seed=0, epoch=0)
    transitions = sorted((int(w[i]), int(w[i + 1])) for w in windows for i in range(len(w) - 1))
    expected = sorted([(i, i + 1) for i in range(9)] + [(4, 5)])
    assert transitions == expected
    assert max(len(w) for w in windows) == 4 and min(len(w) for w in windows) >= 2
    again = training_windows(train, 4, seed=0, epoch=0)
    other = training_windows(train, 4, seed=0, epoch=1)
    assert [w.tolist() for w in windows] == [w.tolist() for w in again]
    assert sorted(map(tuple, windows)) == sorted(map(tuple, other))  # the same windows, reshuffled


def test_sliding_windows_supervise_every_target_once_each_after_the_first_window_with_a_full_history():
    # RPG's official rows: the first window supervises every position, each later window its last one.
    train = [np.arange(10), np.array([3]), np.array([4, 5, 6])]
    rows = sliding_windows(train, 4, seed=0, epoch=0)
    supervised = []
    for window, last_only in rows:
        assert 2 <= len(window) <= 4
        positions = [len(window) - 1] if last_only else range(1, len(window))
        supervised += [(tuple(window[:t].tolist()), int(window[t])) for t in positions]
        if last_only:
            assert len(window) == 4  # a full history of 3 items before its one target
    expected = [(tuple(range(max(0, t - 3), t)), t) for t in range(1, 10)] + [((4,), 5), ((4, 5), 6)]
    assert sorted(supervised) == sorted(expected)
    assert len(rows) == 1 + 6 + 1  # user 0: its first window and one per target 4..9; user 2: one window
    assert [(w.tolist(), f) for w, f in sliding_windows(train, 4, 0, 1)] != [(w.tolist(), f) for w, f in rows]


def test_a_last_only_row_is_trained_on_its_last_target_alone():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 5, size=(12, 3))
    model = _model(codes, (5, 5, 5))
    windows = [np.array([1, 2, 3, 4]), np.array([5, 6, 7, 8])]
    index = right_aligned(windows, 4)
    with torch.no_grad():
        states = model.hidden(index[:, :-1])
        per_position = [[-sum(float(model.digit_log_probs(states[row, t])[m, codes[w[t + 1], m]]) for m in range(3))
                         for t in range(3)] for row, w in enumerate(windows)]
        mixed = model.loss(index, torch.tensor([False, True]))
        assert mixed.item() == pytest.approx((sum(per_position[0]) + per_position[1][2]) / 4, abs=1e-4)
        assert model.loss(index, torch.tensor([False, False])).item() == pytest.approx(model.loss(index).item())


def test_permuting_the_digit_order_changes_no_score():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=(30, 4))
    model = _model(codes, (5, 5, 5, 5))
    perm = [2, 0, 3, 1]
    permuted = _model(codes[:, perm], (5, 5, 5, 5), seed=1)
    state = model.state_dict()
    state["codes"] = state["codes"][:, perm]
    state["tables"] = state["tables"][perm]
    state["heads"] = state["heads"][perm]
    permuted.load_state_dict(state)
    index = right_aligned([np.array([1, 2, 3]), np.array([7]), np.array([4, 5, 6, 8, 9, 10])], 6)
    with torch.no_grad():
        a = model.item_scores(model.hidden(index)[:, -1])
        b = permuted.item_scores(permuted.hidden(index)[:, -1])
        assert torch.allclose(a, b, atol=1e-5)
        # The digits are a set: the unpermuted model reading permuted codes does change.
        swapped = _model(codes[:, perm], (5, 5, 5, 5))
        swapped.load_state_dict({**model.state_dict(), "codes": state["codes"]})
        assert not torch.allclose(a, swapped.item_scores(swapped.hidden(index)[:, -1]), atol=1e-3)


def test_item_score_is_the_sum_of_its_digit_log_probabilities_and_unequal_codebooks_work():
    rng = np.random.default_rng(1)
    vocab = (4, 6, 3)
    codes = np.column_stack([rng.integers(0, v, 25) for v in vocab])
    model = _model(codes, vocab)
    index = right_aligned([np.array([0, 1]), np.array([5, 6, 7])], 6)
    with torch.no_grad():
        states = model.hidden(index)[:, -1]
        scores = model.item_scores(states)
        log_probs = model.digit_log_probs(states)
    for case in range(2):
        for item in (0, 7, 24):
            brute = sum(float(log_probs[case, m, codes[item, m]]) for m in range(3))
            assert scores[case, item].item() == pytest.approx(brute, abs=1e-5)
        # Each digit's distribution covers its own codebook only.
        for m, size in enumerate(vocab):
            assert torch.exp(log_probs[case, m, :size]).sum().item() == pytest.approx(1.0, abs=1e-5)
            assert torch.isinf(log_probs[case, m, size:]).all()


def test_loss_sums_digits_over_every_supervised_position():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 5, size=(12, 3))
    model = _model(codes, (5, 5, 5))
    windows = [np.array([1, 2, 3, 4]), np.array([5, 6])]
    index = right_aligned(windows, 4)
    with torch.no_grad():
        loss = model.loss(index)
        states = model.hidden(index[:, :-1])  # the state after each input position, causal
        total, count = 0.0, 0
        for row, window in enumerate(windows):
            offset = 4 - len(window)  # left padding
            for t in range(1, len(window)):
                log_probs = model.digit_log_probs(states[row, offset + t - 1])
                total -= sum(float(log_probs[m, codes[window[t], m]]) for m in range(3))
                count += 1
        # Causal: the state after item t does not depend on later items.
        prefix = model.hidden(right_aligned([windows[0][:2]], 2))
        assert torch.allclose(prefix[0, -1], model.hidden(index[:1, :2])[0, -1], atol=1e-5)
    assert count == 4  # 3 transitions in the first window, 1 in the second
    assert loss.item() == pytest.approx(total / count, abs=1e-4)


@hookimpl
def register_methods(register) -> None:
    register(MethodSpec(name="rpg-rqvae", tokenizer="rqvae", recommender="rpg", description="RPG on RQ-VAE codes"))


@pytest.mark.parametrize("windows", ["disjoint", "sliding"])
def test_rpg_learns_planted_structure_end_to_end(register_plugin, shared_cache, windows):
    register_plugin(make_plugin(register_methods=register_methods))
    pop, _, _ = execute(RunRequest("synthetic", "loo", "pop"), shared_cache, False)
    params = {"recommender.epochs": 8, "recommender.patience": 8, "recommender.batch_size": 32,
              "recommender.d_model": 32, "recommender.heads": 2, "recommender.head_dim": 16, "recommender.d_ff": 64,
              "recommender.windows": windows}
    row, evaluation, split = execute(RunRequest("synthetic", "loo", "rpg-rqvae", params=params), shared_cache, False)
    assert row["metrics"]["all"]["ndcg@10"] > 2 * pop["metrics"]["all"]["ndcg@10"]
    for ranking, seen in zip(evaluation.rankings, split.test.seen):
        assert not set(ranking.tolist()) & set(seen.tolist())
    assert row["info"]["training"]["train rpg"]["epochs"] >= 1


def test_cosine_digit_logits_are_bounded_by_the_temperature_and_stay_digit_order_free():
    # RPG's official code (and Cornac's RPG) score digits by cosine similarity over a temperature.
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 5, size=(30, 4))
    dot = _model(codes, (5, 5, 5, 5))
    cosine = _model(codes, (5, 5, 5, 5), digit_logits="cosine", temperature=0.5, activation="gelu")
    cosine.load_state_dict(dot.state_dict())  # the same weights: only the logits differ
    index = right_aligned([np.array([1, 2, 3]), np.array([7])], 6)
    with torch.no_grad():
        states = cosine.hidden(index)[:, -1]
        log_probs = cosine.digit_log_probs(states)
        # Logits in [-1/T, 1/T] over 5 codes: no code's probability beyond e^(2/T) times another's.
        assert (log_probs.max(-1).values - log_probs.min(-1).values <= 2 / 0.5 + 1e-5).all()
        assert not torch.allclose(log_probs, dot.digit_log_probs(dot.hidden(index)[:, -1]))
        perm = [2, 0, 3, 1]
        permuted = _model(codes[:, perm], (5, 5, 5, 5), digit_logits="cosine", temperature=0.5, activation="gelu")
        state = cosine.state_dict()
        permuted.load_state_dict({**state, "codes": state["codes"][:, perm], "tables": state["tables"][perm],
                                  "heads": state["heads"][perm]})
        assert torch.allclose(cosine.item_scores(states), permuted.item_scores(permuted.hidden(index)[:, -1]),
                              atol=1e-5)


@pytest.mark.parametrize(("param", "value", "message"), [
    ("digit_logits", "softmax", "parameter 'digit_logits' is 'softmax'; give dot or cosine"),
    ("activation", "tanh", "parameter 'activation' is 'tanh'; give relu or gelu"),
    ("windows", "all", "parameter 'windows' is 'all'; give disjoint or sliding")])
def test_rpg_head_faults_fail_in_one_line(param, value, message):
    from benchmark import plugins
    from benchmark.errors import ParameterError
    from benchmark.params import resolve

    spec = plugins.get_recommenders()["rpg"]
    with pytest.raises(ParameterError, match=message):
        resolve(spec.params, "tiny", {param: value}, "rpg")


# --------------------------------------------------------------------------- graph-constrained decoding


def _unique_codes(n: int, vocab: int, digits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, vocab, size=(3 * n, digits)), axis=0)[:n]
    return codes[rng.permutation(len(codes))]


def test_item_graph_links_each_item_to_its_most_similar_items_by_digit_code_embeddings():
    codes = _unique_codes(40, 6, 3, seed=4)
    model = _model(codes, (6, 6, 6))
    graph = item_graph(model, edges=7, chunk=16)  # chunks of 16 items: the blocks join up
    assert graph.shape == (40, 7)
    tables = torch.nn.functional.normalize(model.tables.detach(), dim=-1)
    for item in (0, 17, 39):
        brute = torch.tensor([sum(0.5 * (float(tables[m, codes[item, m]] @ tables[m, codes[other, m]]) + 1)
                                 for m in range(3)) / 3 for other in range(40)])
        picked = brute[graph[item]]
        assert torch.allclose(picked, brute.sort(descending=True).values[:7], atol=1e-5)
        assert graph[item, 0].item() == item  # nothing is more similar to an item than itself


def test_graph_decoding_on_a_complete_graph_equals_the_exact_top_20_with_seen_items_left_out():
    codes = _unique_codes(60, 8, 4, seed=5)
    model = _model(codes, (8, 8, 8, 8))
    index = right_aligned([np.array([1, 2, 3]), np.array([7]), np.array([4, 5, 6, 8, 9, 10])], 6)
    with torch.no_grad():
        states = model.hidden(index)[:, -1]
        exact = model.item_scores(states)
        exclude = torch.zeros(3, 60, dtype=torch.bool)
        exclude[0, [1, 2, 3]] = exclude[2, exact[2].topk(5).indices] = True  # case 2 loses its 5 best
        start = torch.as_tensor(np.random.default_rng(0).choice(60, size=(3, 20)))
        beam, scores = graph_decode(model.digit_log_probs(states), model.codes, item_graph(model, 60), start,
                                    beams=20, steps=1, exclude=exclude)
    masked = exact.masked_fill(exclude, float("-inf"))
    assert torch.equal(beam, masked.topk(20).indices)
    assert torch.allclose(scores, masked.topk(20).values, atol=1e-5)


def test_a_sparse_graph_finds_part_of_the_exact_top_20_and_more_steps_never_score_lower():
    codes = _unique_codes(300, 8, 4, seed=6)
    model = _model(codes, (8, 8, 8, 8))
    index = right_aligned([np.array([1, 2, 3]), np.array([7, 40, 41])], 6)
    with torch.no_grad():
        states = model.hidden(index)[:, -1]
        log_probs = model.digit_log_probs(states)
        graph = item_graph(model, 10)
        start = torch.as_tensor(np.random.default_rng(0).choice(300, size=(2, 20)))
        exact = model.item_scores(states).topk(20)
        previous = None
        for steps in (1, 2, 4, 8):
            beam, scores = graph_decode(log_probs, model.codes, graph, start, beams=20, steps=steps)
            assert len(set(beam[0].tolist())) == 20  # an item fills one slot only
            assert torch.allclose(scores, model.item_scores(states).gather(1, beam), atol=1e-5)
            if previous is not None:  # the beam keeps its best: the k-th best score never falls
                assert (scores >= previous - 1e-6).all()
            previous = scores
    # After 8 moves, beams of 20 over a 10-edge graph hold most of the exact top-20 of 300.
    held = [len(set(beam[row].tolist()) & set(exact.indices[row].tolist())) for row in range(2)]
    assert min(held) >= 10, held


def test_graph_scoring_end_to_end_ranks_only_its_beam_and_is_compared_with_exact(register_plugin, shared_cache):
    params = {"recommender.epochs": 3, "recommender.patience": 3, "recommender.scoring": "graph",
              "recommender.graph_edges": 8, "recommender.graph_beams": 20, "recommender.graph_steps": 3}
    row, evaluation, split = execute(RunRequest("synthetic", "loo", "rpg", params=params), shared_cache, False)
    for ranking, seen in zip(evaluation.rankings, split.test.seen):
        assert not set(ranking[:20].tolist()) & set(seen.tolist())
    compared = {k.split("/", 1)[1]: v for k, v in row["extra_metrics"].items() if k.startswith("beam_vs_exact/")}
    assert 0.0 < compared["held@20"] <= 1.0
    assert compared["exact_ndcg@10"] - row["metrics"]["all"]["ndcg@10"] == pytest.approx(compared["ndcg@10_diff"])


def test_a_graph_ranked_case_does_not_depend_on_its_batch_and_pads_past_the_beam():
    from benchmark.components import CaseBatch
    from plugins.recommenders.rpg import RPGRecommender

    codes = _unique_codes(80, 8, 4, seed=7)
    recommender = RPGRecommender({"scoring": "graph", "graph_edges": 6, "graph_beams": 20, "graph_steps": 2},
                                 seed=3)
    recommender.model, recommender.length, recommender.device = _model(codes, (8, 8, 8, 8)), 6, torch.device("cpu")
    histories = [np.array([1, 2, 3]), np.array([7, 8]), np.array([4, 5, 6, 9])]
    batch = CaseBatch(users=np.array([10, 11, 12]), histories=histories, seen=histories, exclude=histories)
    assert recommender.score(batch) is None  # graph decoding answers with lists
    both = recommender.recommend(batch, 25)
    alone = recommender.recommend(CaseBatch(users=np.array([11]), histories=histories[1:2], seen=histories[1:2],
                                            exclude=histories[1:2]), 25)
    assert np.array_equal(both[1], alone[0])  # a case's beam starts from items drawn for its user
    assert (both[:, 20:] == -1).all() and (both[:, :20] >= 0).all()  # 20 beams fill 20 of 25 slots
    assert all(not set(row.tolist()) & set(seen.tolist()) for row, seen in zip(both, histories))
    # Under exact scoring the same recommender scores every item instead.
    recommender.params["scoring"] = "exact"
    assert recommender.score(batch).shape == (3, 80)
