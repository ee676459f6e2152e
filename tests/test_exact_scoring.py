"""Exact full-catalogue scoring (``scoring=exact``) of the token-sequence recommenders:
every item's score is its whole identifier's log-probability, equal to a brute-force
forward pass per (input, identifier) pair; a beam as wide as the catalogue finds the same
top list; it runs end to end and leaves the run keys of the default (beam) alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import one_error_line

from benchmark import plugins
from benchmark.cli import main
from benchmark.components import CaseBatch, ItemIdentifiers, TrainingData
from benchmark.methods import resolve_method
from benchmark.nn.beam_search import TokenTrie
from benchmark.nn.exact_scoring import cases_per_pass, level_widths, top_items
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute, load_split
from plugins.recommenders.decoder import DecoderRecommender
from plugins.recommenders.llm import LLMRecommender
from plugins.recommenders.seq2seq import PAD, Seq2SeqRecommender

SIZE = {"d_model": 32, "heads": 2, "head_dim": 16, "d_ff": 64, "layers": 2, "dropout": 0.0}


def _params(recommender: str, **overrides):
    return resolve(plugins.get_recommenders()[recommender].params, "tiny", {**SIZE, **overrides}, recommender)


def _codes(n_items: int, levels: int = 3, per_level: int = 4, seed: int = 0) -> ItemIdentifiers:
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, per_level, (4 * n_items, levels)), axis=0)
    codes = codes[rng.permutation(len(codes))[:n_items]]
    return ItemIdentifiers(kind="codes", n_items=n_items, codes=codes, vocab_sizes=(per_level,) * levels)


def _texts(n_items: int) -> ItemIdentifiers:
    """Distinct titles of one to three words (some a prefix of another: the end token separates them)."""
    words = ["red", "blue", "green", "toy", "story", "heat", "night"]
    rng = np.random.default_rng(1)
    texts: dict[str, None] = {}
    while len(texts) < n_items:
        texts.setdefault(" ".join(rng.choice(words, int(rng.integers(1, 4)))), None)
    return ItemIdentifiers(kind="text", n_items=n_items, texts=list(texts))


def _batch(n_items: int, exclude: bool = False) -> CaseBatch:
    """Three cases with histories of different lengths (padding is exercised), one of them empty."""
    histories = [np.array([0, 3, 1]), np.array([2]), np.array([], np.int64)]
    seen = [h.copy() for h in histories]
    return CaseBatch(users=np.array([4, 7, 9]), histories=histories, seen=seen, exclude=seen if exclude else None)


def _seq2seq(identifiers: ItemIdentifiers, **overrides) -> Seq2SeqRecommender:
    recommender = Seq2SeqRecommender(_params("seq2seq", user_tokens=16, **overrides), seed=0)
    recommender.device = torch.device("cpu")
    torch.manual_seed(0)
    recommender._build(identifiers)
    recommender.model.eval()
    return recommender


def _decoder(identifiers: ItemIdentifiers, **overrides) -> DecoderRecommender:
    recommender = DecoderRecommender(_params("decoder", user_tokens=16, **overrides), seed=0)
    recommender.device = torch.device("cpu")
    torch.manual_seed(0)
    recommender._build(identifiers)
    recommender.model.eval()
    return recommender


def _llm(identifiers: ItemIdentifiers, **overrides) -> LLMRecommender:
    data = TrainingData.from_split(load_split("synthetic:0,100,48", "loo"))
    recommender = LLMRecommender(_params("llm", **overrides), seed=0)
    recommender.device = torch.device("cpu")
    recommender._build(identifiers, data)
    recommender.model.eval()
    return recommender


def _causal_brute_force(model, prompts: list[list[int]], sequences: list[list[int]]) -> torch.Tensor:
    """One forward pass per (prompt, identifier): the identifier tokens' summed log-probability."""
    scores = torch.zeros(len(prompts), len(sequences), dtype=torch.float64)
    with torch.no_grad():
        for case, prompt in enumerate(prompts):
            for item, sequence in enumerate(sequences):
                ids = torch.tensor([prompt + sequence])
                logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].double()
                scores[case, item] = torch.log_softmax(logits, -1)[torch.arange(len(sequence)),
                                                                   torch.tensor(sequence)].sum()
    return scores


@pytest.mark.parametrize("kind", ["codes", "text"])
def test_seq2seq_exact_scores_equal_a_forward_pass_per_item(kind):
    identifiers = _codes(30) if kind == "codes" else _texts(30)
    recommender = _seq2seq(identifiers)
    batch = _batch(identifiers.n_items)
    scores = recommender.exact_scores(batch)
    assert scores.shape == (3, identifiers.n_items)
    ids, mask = recommender.layout.encoder_inputs(batch.users, batch.histories)
    expected = torch.zeros(3, identifiers.n_items, dtype=torch.float64)
    with torch.no_grad():
        for case in range(3):
            for item, sequence in enumerate(recommender.layout.outputs):  # text: ends with the end token
                decoder_ids = torch.tensor([[PAD] + sequence[:-1]])
                logits = recommender.model(input_ids=ids[case:case + 1], attention_mask=mask[case:case + 1],
                                           decoder_input_ids=decoder_ids).logits[0].double()
                expected[case, item] = torch.log_softmax(logits, -1)[torch.arange(len(sequence)),
                                                                     torch.tensor(sequence)].sum()
    assert torch.allclose(scores.double(), expected, atol=1e-5, rtol=0)
    if kind == "text":  # identifiers of several lengths: the end token is scored
        assert len({len(s) for s in recommender.layout.outputs}) > 1


def test_decoder_exact_scores_equal_a_forward_pass_per_item():
    identifiers = _codes(30)
    recommender = _decoder(identifiers)
    batch = _batch(identifiers.n_items)
    heads = recommender._heads(batch.users).tolist()
    prompts = [[head] + recommender.code_table[torch.as_tensor(h, dtype=torch.long)].reshape(-1).tolist()
               for head, h in zip(heads, batch.histories)]
    expected = _causal_brute_force(recommender.model, prompts, recommender.code_table.tolist())
    assert torch.allclose(recommender.exact_scores(batch).double(), expected, atol=1e-5, rtol=0)


def test_llm_exact_scores_equal_a_forward_pass_per_item():
    identifiers = _codes(48, levels=2, per_level=8)
    recommender = _llm(identifiers)
    batch = _batch(identifiers.n_items)
    prompts = [recommender.prompts.sample("seq", history, 0)[0] for history in batch.histories]
    expected = _causal_brute_force(recommender.model, prompts, recommender.prompts.codes)
    assert torch.allclose(recommender.exact_scores(batch).double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("build", "identifiers"), [
    (_seq2seq, _codes(18)), (_seq2seq, _texts(16)), (_decoder, _codes(18)), (_llm, _codes(20, levels=2, per_level=8))],
    ids=["seq2seq-codes", "seq2seq-text", "decoder", "llm"])
@pytest.mark.parametrize("exclude", [False, True])
def test_a_beam_as_wide_as_the_catalogue_ranks_as_exact_scoring_does(build, identifiers, exclude):
    recommender = build(identifiers)
    batch = _batch(identifiers.n_items, exclude)
    assert recommender.params["beam_size"] >= identifiers.n_items
    beam = recommender.recommend(batch, 20)
    recommender.params["scoring"] = "exact"
    exact = recommender.recommend(batch, 20)
    assert beam.tolist() == exact.tolist()
    left = identifiers.n_items - (np.array([len(s) for s in batch.seen]) if exclude else 0)
    assert ((exact >= 0).sum(1) == np.minimum(20, left)).all()  # short catalogues pad with -1
    if exclude:
        assert not any(set(row) & set(seen.tolist()) for row, seen in zip(exact.tolist(), batch.seen))
    # The list is the exact scores' order.
    scores = recommender.exact_scores(batch)
    for row in range(len(batch)):
        items = exact[row][exact[row] >= 0]
        assert (np.diff(scores[row, items].numpy()) <= 0).all()


def test_top_items_leaves_excluded_items_out_and_breaks_ties_by_index():
    scores = torch.tensor([[0.5, 2.0, 2.0, -1.0], [1.0, 0.0, 3.0, 2.0]])
    assert top_items(scores, 3).tolist() == [[1, 2, 0], [2, 3, 0]]
    assert top_items(scores, 4, [np.array([1]), np.array([0, 2, 3])]).tolist() == [[2, 0, 3, -1], [1, -1, -1, -1]]
    assert top_items(scores, 6).shape == (2, 6)


def test_passes_are_bounded_by_the_widest_trie_level():
    trie = TokenTrie([[2, 5, 8], [2, 5, 9], [2, 6, 8], [3, 5, 8]], 10)
    assert level_widths(trie) == [1, 2, 3]  # the root, then inner nodes: {2, 3}, {25, 26, 35}
    assert cases_per_pass(trie, floats_per_row=10, limit=64, budget=300) == 10
    assert cases_per_pass(trie, floats_per_row=10, limit=4, budget=300) == 4
    assert cases_per_pass(trie, floats_per_row=1000, limit=64, budget=300) == 1


@pytest.mark.parametrize("method", ["tiger", "lcrec", "tiger-decoder"])
def test_exact_scoring_runs_end_to_end(method, shared_cache):
    params = {"recommender.epochs": 1, "recommender.valid_cases": 20, "recommender.scoring": "exact"}
    row, evaluation, split = execute(RunRequest("synthetic:0,100,48", "loo", method, params=params), shared_cache,
                                     False)
    assert evaluation.rankings.shape == (len(split.test), 20) and (evaluation.rankings >= 0).all()
    for ranking, seen in zip(evaluation.rankings, split.test.seen):
        assert not set(ranking.tolist()) & set(seen.tolist())
    assert 0.0 <= row["metrics"]["all"]["ndcg@10"] <= row["metrics"]["all"]["recall@10"] <= 1.0
    # Keyed at exact; the default (beam) keeps the run keys stored before the parameter existed.
    assert resolve_method(method, "tiny", {"recommender.scoring": "exact"}).key_params["recommender.scoring"] == "exact"
    beam = resolve_method(method, "tiny", {})
    assert beam.params["recommender.scoring"] == "beam" and "recommender.scoring" not in beam.key_params


@pytest.mark.parametrize(("method", "param", "message"), [
    ("tiger", "recommender.scoring=greedy", "recommender 'seq2seq': parameter 'scoring' is 'greedy'; give beam or "
     "exact"),
    ("lcrec", "recommender.scoring=all", "recommender 'llm': parameter 'scoring' is 'all'; give beam or exact"),
    ("tiger-decoder", "recommender.scoring=", "recommender 'decoder': parameter 'scoring' is ''; give beam or exact"),
    ("tiger", "recommender.decoding=unconstrained,recommender.scoring=exact", "decoding=unconstrained does not "
     "apply; give decoding=constrained or scoring=beam"),
])
def test_scoring_faults_fail_in_one_line_before_fitting(method, param, message, tmp_path, capsys):
    assignments = [arg for pair in param.split(",") for arg in ("--param", pair)]
    code = main(["run", "--dataset", "synthetic", "--methods", method, "--store", f"sqlite:///{tmp_path}/r.db",
                 "--leaderboards", str(tmp_path / "b"), "--cache", str(tmp_path / "c"), "--no-progress",
                 *assignments])
    assert code == 2
    assert message in one_error_line(capsys)


def test_agreement_counts_equal_sets_orders_and_held_shares():
    from plugins.evaluators.beam_vs_exact import agreement

    exact = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    beam = np.array([[1, 2, 3], [6, 5, 4], [7, 8, -1]])
    assert agreement(beam, exact, k=3) == {"same_set@3": 2 / 3, "same_order@3": 1 / 3,
                                          "held@3": pytest.approx((1 + 1 + 2 / 3) / 3)}


@pytest.mark.parametrize(("beam_size", "agrees"), [(20, False), (130, True)])
def test_every_beam_ranked_run_stores_its_agreement_with_exact_scoring(beam_size, agrees, shared_cache):
    # The evaluator ranks the test cases again with the fitted weights under scoring=exact;
    # with a beam as wide as the catalogue (100 items) nothing is pruned, so both rankings
    # agree for every case and no metric moves.
    params = {"recommender.epochs": 1, "recommender.valid_cases": 20, "recommender.beam_size": beam_size}
    row, evaluation, split = execute(RunRequest("synthetic:0,100,48", "loo", "tiger", params=params), shared_cache,
                                     False)
    extra = {k.split("/", 1)[1]: v for k, v in row["extra_metrics"].items() if k.startswith("beam_vs_exact/")}
    assert set(extra) == {"same_set@20", "same_order@20", "held@20", "exact_ndcg@10", "exact_recall@10",
                          "ndcg@10_diff", "recall@10_diff", "exact_seconds_per_1k"}
    beam_ndcg = row["metrics"]["all"]["ndcg@10"]
    assert extra["exact_ndcg@10"] == pytest.approx(beam_ndcg + extra["ndcg@10_diff"])
    if agrees:
        assert extra["same_order@20"] == extra["same_set@20"] == extra["held@20"] == 1.0
        assert extra["ndcg@10_diff"] == extra["recall@10_diff"] == 0.0
    else:  # 20 beams over 100 items prune: the lists differ for some cases
        assert extra["same_set@20"] < 1.0 and extra["held@20"] < 1.0


def test_a_large_test_set_is_compared_on_a_fixed_sample_of_its_cases(shared_cache, monkeypatch):
    import plugins.evaluators.beam_vs_exact as module
    from benchmark.data.splits import fixed_sample
    from benchmark.evaluation.metrics import summarise

    monkeypatch.setattr(module, "CASES", 30)
    params = {"recommender.epochs": 1, "recommender.valid_cases": 20}
    row, _, split = execute(RunRequest("synthetic:0,100,48", "loo", "tiger", params=params), shared_cache, False)
    extra = {k.split("/", 1)[1]: v for k, v in row["extra_metrics"].items() if k.startswith("beam_vs_exact/")}
    assert len(split.test) > 30 and extra["cases"] == 30
    index = fixed_sample(len(split.test), 30)
    # The beam side of the difference is the run's own ranking on those cases, not on all.
    sampled = summarise(np.asarray(row["ranks"])[index], split.test.subset(index).masks())["all"]["ndcg@10"]
    assert extra["exact_ndcg@10"] - extra["ndcg@10_diff"] == pytest.approx(sampled)
    assert np.array_equal(index, fixed_sample(len(split.test), 30))  # the same cases every time


def test_runs_ranked_exactly_or_by_scores_store_no_beam_agreement(shared_cache):
    params = {"recommender.epochs": 1, "recommender.valid_cases": 20, "recommender.scoring": "exact"}
    row, _, _ = execute(RunRequest("synthetic:0,100,48", "loo", "tiger", params=params), shared_cache, False)
    assert not [k for k in row["extra_metrics"] if k.startswith("beam_vs_exact/")]
    row, _, _ = execute(RunRequest("synthetic:0,100,48", "loo", "pop"), shared_cache, False)
    assert not [k for k in row["extra_metrics"] if k.startswith("beam_vs_exact/")]


def _qwen2(heads: int = 4, kv_heads: int = 2, vocab: int = 40):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(3)
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=8,
                         max_position_embeddings=64, tie_word_embeddings=True, pad_token_id=0)
    return Qwen2ForCausalLM(config).eval()


@pytest.mark.parametrize("wrap", ["plain", "grouped-query", "lora"])
def test_shared_prompt_decoder_gives_the_causal_lm_decoders_logits(wrap):
    """Left-padded prompts of three lengths, then steps that widen, reorder and repeat rows (as
    beam search and exact scoring do): every step's logits equal CausalLMDecoder's."""
    from benchmark.nn.causal_lm import left_padded
    from benchmark.nn.decoders import CausalLMDecoder, SharedPromptDecoder, prompt_decoder

    model = _qwen2(kv_heads=4 if wrap == "plain" else 2)
    if wrap == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")).eval()
        for name, weight in model.named_parameters():  # adapters that change the logits
            if "lora_B" in name:
                torch.nn.init.normal_(weight, std=0.5)
    ids, mask = left_padded([[5, 6, 7, 8, 9], [11, 12], [13, 14, 15]], 0)
    shared, reference = SharedPromptDecoder(model, ids, mask), CausalLMDecoder(model, ids, mask)
    assert isinstance(prompt_decoder(model, ids, mask), SharedPromptDecoder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        assert torch.allclose(shared.step(None, None), reference.step(None, None), atol=1e-5)
        rows = 3
        for width in (4, 6, 2):
            parents = (torch.arange(3)[:, None] * (rows // 3)
                       + torch.randint(0, rows // 3, (3, width), generator=generator)).reshape(-1)
            tokens = torch.randint(1, 40, (3 * width,), generator=generator)
            got, expected = shared.step(tokens, parents), reference.step(tokens, parents)
            assert got.shape == expected.shape == (3 * width, 40)
            assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
            rows = 3 * width


def test_prompt_decoder_falls_back_where_the_shared_prompt_does_not_apply():
    from transformers import LlamaConfig, LlamaForCausalLM

    from benchmark.nn.causal_lm import left_padded
    from benchmark.nn.decoders import CausalLMDecoder, SharedPromptDecoder, prompt_decoder

    ids, mask = left_padded([[5, 6], [7]], 0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    assert type(prompt_decoder(llama, ids, mask)) is CausalLMDecoder
    windowed = _qwen2()
    windowed.config.use_sliding_window = True
    assert type(prompt_decoder(windowed, ids, mask)) is CausalLMDecoder
    with pytest.raises(ValueError, match="Qwen2"):
        SharedPromptDecoder(llama, ids, mask)
