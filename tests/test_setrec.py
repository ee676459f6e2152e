"""SETRec: the sparse mask, order-agnostic encoding, joint token sets, beta chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_plugin

from benchmark import hookimpl, plugins
from benchmark.components import MethodSpec, Recommender, RecommenderSpec, RunInfo, TrainingData
from benchmark.errors import ParameterError, PluginError
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute, fit, load_split, make_context, resolve_method
from plugins.recommenders.setrec import (
    SetRecModel,
    SetRecRecommender,
    history_mask,
    item_logits,
    share_t5_positions,
)
from plugins.tokenizers.setrec import SetTokens

FAST = {"recommender.epochs": 1}


def _model(backbone: str, sparse: bool = True, learn_queries: bool = True) -> SetRecModel:
    params = resolve(plugins.get_recommenders()["setrec"].params, "tiny",
                     {"backbone": backbone, "sparse_mask": sparse, "d_model": 64, "heads": 2, "head_dim": 32,
                      "d_ff": 64, "layers": 1, "dropout": 0.0}, "setrec")
    recommender = SetRecRecommender(params, seed=0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tokens = SetTokens(rng.normal(size=(10, 8)).astype("f"), rng.normal(size=(10, 16)).astype("f"),
                       n_semantic=3, latent_dim=4, token_dim=64, hidden=[32, 16])
    backbone_model, width = recommender._backbone()
    if backbone == "t5":
        share_t5_positions(backbone_model.encoder.block[0].layer[0].SelfAttention, tokens.n_tokens)
    return SetRecModel(tokens, backbone_model, backbone, width, learn_queries, sparse).eval()


def test_sparse_mask_is_exactly_the_papers_on_a_tiny_history():
    # Three items of two tokens each; the first item slot is padding.
    valid = torch.tensor([[False, False, True, True, True, True]])
    allowed = history_mask(valid, group=2, sparse=True)[0].int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0],  # padding tokens see only themselves
        [0, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],  # item 2's tokens: not each other, no earlier real item
        [0, 0, 0, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],  # item 3's tokens: every token of item 2, itself, not its sibling
        [0, 0, 1, 1, 0, 1],
    ]
    causal = history_mask(valid, group=2, sparse=False)[0].int().tolist()
    assert causal[5] == [0, 0, 1, 1, 1, 1] and causal[3] == [0, 0, 1, 1, 0, 0]


def test_t5_positions_are_shared_within_an_item():
    model = _model("t5")
    bias = model.backbone.encoder.block[0].layer[0].SelfAttention.compute_bias(8, 8)[0, 0]
    # group of 4 tokens: tokens 0-3 are item 0, 4-7 item 1; bias depends on the item distance only.
    assert torch.equal(bias[0, :4], bias[0, :4][0].expand(4)) and torch.equal(bias[5, 4:], bias[5, 4:][0].expand(4))
    assert torch.equal(bias[0, 4:], bias[3, 4:]) and not torch.equal(bias[0, 0], bias[0, 4])


@pytest.mark.parametrize("backbone", ["t5", "decoder"])
def test_permuting_an_items_tokens_leaves_every_score_unchanged(backbone):
    model = _model(backbone)
    table = model.tokens().detach()
    history = torch.randn(2, 5, 4, 64)
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[1, :2] = False
    permuted = history.clone()
    permuted[:, 2] = history[:, 2, [3, 1, 0, 2]]
    permuted[:, 4] = history[:, 4, [1, 2, 3, 0]]
    with torch.no_grad():
        scores = item_logits(model.read(history, valid), table)
        again = item_logits(model.read(permuted, valid), table)
        padded = history.clone()
        padded[1, 0] = torch.randn(4, 64)  # a padding slot changes nothing either
        assert torch.allclose(item_logits(model.read(padded, valid), table), scores, atol=1e-5)
    assert torch.allclose(scores, again, atol=1e-5)
    # The causal ablation reads token order: the same permutation changes its scores.
    causal = _model(backbone, sparse=False)
    with torch.no_grad():
        assert not torch.allclose(item_logits(causal.read(history, valid), table),
                                  item_logits(causal.read(permuted, valid), table), atol=1e-4)


@pytest.mark.parametrize("backbone", ["t5", "decoder"])
def test_each_query_generates_its_token_independently_of_the_other_queries(backbone):
    model = _model(backbone)
    history, valid = torch.randn(1, 3, 4, 64), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        before = model.read(history, valid)
        model.queries[2] += 1.0
        after = model.read(history, valid)
    changed = (before - after).abs().amax(-1)[0]
    assert changed[2] > 1e-3 and torch.all(changed[[0, 1, 3]] < 1e-5)


def test_set_tokens_zero_cold_cf_and_reconstruct_text(tmp_path):
    split = load_split("synthetic", "cold-items")
    data = TrainingData.from_split(split)
    context = make_context(RunInfo("synthetic", "cold-items", "setrec", {}, 0, "tiny"), data, tmp_path,
                           progress=False)
    tokenizer_spec = plugins.get_tokenizers()["setrec"]
    params = resolve(tokenizer_spec.params, "tiny", {"semantic_tokens": 2}, "setrec")
    identifiers = tokenizer_spec.factory(params, 0).fit(data, context)
    cold = data.train_counts == 0
    assert cold.any() and identifiers.kind == "token_set"
    assert identifiers.token_sets.shape == (data.n_items, 3, params["token_dim"])
    assert np.all(identifiers.token_sets[cold, 0] == 0) and np.any(identifiers.token_sets[~cold, 0] != 0)
    assert np.all(np.abs(identifiers.token_sets[cold, 1:]).sum(-1) > 0)  # cold items keep semantic tokens
    module = identifiers.modules
    loss = module.reconstruction_loss()
    loss.backward()
    assert float(loss.detach()) > 0 and module.encoder[0].weight.grad is not None


def test_parameter_faults_fail_before_fitting():
    with pytest.raises(ParameterError, match="beta_grid"):
        resolve_method("setrec", "tiny", {"recommender.beta_grid": "0,1.5"})
    with pytest.raises(ParameterError, match="backbone"):
        resolve_method("setrec", "tiny", {"recommender.backbone": "rnn"})
    with pytest.raises(ParameterError, match="without tokens"):
        resolve_method("setrec-no-cf", "tiny", {"tokenizer.semantic_tokens": 0})
    with pytest.raises(ParameterError, match="model_path"):
        resolve_method("setrec", "tiny", {"recommender.lora_rank": 8})


def test_beta_is_chosen_on_validation_and_stored(shared_cache):
    request = RunRequest("synthetic:0,100,48", "loo", "setrec", params={**FAST, "recommender.beta_grid": "0,0.5,1"})
    fitted = fit(request, shared_cache, False)
    recommender, epoch = fitted.recommender, fitted.run.state["epochs"][0]
    # The chosen beta is the grid value with the best validation N@10 of the kept weights.
    by_beta = {}
    for beta in (0.0, 0.5, 1.0):
        recommender.beta = beta
        by_beta[beta] = fitted.context.validate(recommender)["ndcg@10"]
    assert len(set(by_beta.values())) > 1
    assert epoch["beta"] == max(by_beta, key=lambda b: (by_beta[b], -b))
    assert epoch["ndcg@10"] == pytest.approx(by_beta[epoch["beta"]])
    row, _, _ = execute(request, shared_cache, False)
    assert row["extra_metrics"]["selection/beta"] == row["info"]["epochs"][0]["beta"]
    assert row["info"]["identifiers"]["joint"] is True
    assert row["info"]["identifiers"]["beta"] == row["extra_metrics"]["selection/beta"]


def test_setrec_beats_popularity_and_reaches_cold_items(shared_cache):
    pop, _, _ = execute(RunRequest("synthetic", "loo", "pop"), shared_cache, False)
    setrec, _, _ = execute(RunRequest("synthetic", "loo", "setrec", params={"recommender.epochs": 2}),
                           shared_cache, False)
    assert setrec["metrics"]["all"]["ndcg@10"] > 2 * pop["metrics"]["all"]["ndcg@10"]
    cold, evaluation, split = execute(RunRequest("synthetic:0,100,48", "cold-items", "setrec", params=FAST),
                                      shared_cache, False)
    cold_items = set(np.flatnonzero(split.train_counts == 0).tolist())
    assert set(evaluation.rankings.ravel().tolist()) & cold_items  # scored through semantic tokens


def test_a_joint_tokenizer_needs_a_recommender_that_returns_trained_identifiers(tmp_path, register_plugin):
    class Ignores(Recommender):
        accepts = frozenset({"token_set"})

        def fit(self, data, identifiers, context):
            self.n = data.n_items

        def score(self, batch):
            return np.zeros((len(batch), self.n), np.float32)

    def register_recommenders(register):
        register(RecommenderSpec("ignores-sets", lambda p, s: Ignores(), Ignores.accepts, "test"))

    def register_methods(register):
        register(MethodSpec("setrec-ignored", "setrec", "ignores-sets", "test"))

    register_plugin(make_plugin(register_recommenders=hookimpl(register_recommenders),
                                register_methods=hookimpl(register_methods)))
    with pytest.raises(PluginError, match="joint.*trained_identifiers"):
        execute(RunRequest("synthetic", "loo", "setrec-ignored", params={"tokenizer.semantic_tokens": 1}),
                tmp_path, False)


def test_a_pretrained_backbone_loads_from_a_saved_folder_with_lora(tmp_path):
    from transformers import Qwen2Config, Qwen2Model

    config = Qwen2Config(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    Qwen2Model(config).save_pretrained(tmp_path / "qwen")
    row, evaluation, _ = execute(RunRequest("synthetic", "loo", "setrec-decoder", params={
        **FAST, "recommender.model_path": str(tmp_path / "qwen"), "recommender.lora_rank": 4}), tmp_path, False)
    assert row["backbone"].endswith("LoRA r4") and (evaluation.rankings >= 0).all()
    with pytest.raises(ParameterError, match="a .qwen2. model; give a T5 checkpoint .*, or set backbone=decoder"):
        execute(RunRequest("synthetic", "loo", "setrec", params={
            **FAST, "recommender.model_path": str(tmp_path / "qwen")}), tmp_path, False)
