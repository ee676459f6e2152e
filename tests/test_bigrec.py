"""BIGRec: title prompts, grounding by L2 distance of the model's own embeddings (with the
optional popularity re-weighting), and a saved causal LM loaded with LoRA end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import saved_causal_lm

from benchmark import plugins
from benchmark.components import CaseBatch, ItemIdentifiers, TrainingData
from benchmark.errors import PluginError
from benchmark.nn.causal_lm import offline_tokenizer
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute, load_split
from plugins.recommenders.bigrec import BIGRecRecommender, TitlePrompts

TINY = {"d_model": 32, "heads": 2, "head_dim": 16, "d_ff": 64, "layers": 2, "epochs": 1, "valid_cases": 50,
        "num_beams": 2}


def _recommender(data: TrainingData, **overrides) -> BIGRecRecommender:
    params = resolve(plugins.get_recommenders()["bigrec"].params, "tiny", {**TINY, **overrides}, "bigrec")
    recommender = BIGRecRecommender(params, seed=0)
    recommender.device = torch.device("cpu")
    titles = [f"title {i} of {data.n_items}" for i in range(data.n_items)]
    recommender._build(ItemIdentifiers(kind="text", n_items=data.n_items, texts=titles), data)
    recommender.model.eval()
    return recommender


def test_prompt_lists_the_last_history_titles_and_the_response_is_the_next_title():
    prompts = TitlePrompts(offline_tokenizer("test"), ["Toy Story", "Heat", "Casino", "Fargo"], 8, title_history=2)
    prompt, response = prompts.sample(np.array([0, 1, 2]), 3)
    assert response == prompts.words("Fargo") + [prompts.eos]
    text = prompts.tokenizer.decode(prompt)
    assert "heat, casino" in text and "toy story" not in text


def test_generated_text_equal_to_a_title_grounds_to_that_item_first():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    recommender = _recommender(data)
    with torch.no_grad():
        recommender._titles = recommender.embed(recommender.prompts.titles)
        for item in (0, 7, data.n_items - 1):
            scores = recommender.ground(recommender.embed([recommender.prompts.titles[item]]))
            assert int(scores.argmax()) == item
            distances = torch.cdist(recommender.embed([recommender.prompts.titles[item]]), recommender._titles)
            assert torch.allclose(scores, -distances)  # gamma 0: minus the L2 distance


def test_popularity_reweighting_divides_normalised_distances():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    recommender = _recommender(data, popularity_weight=2.0)
    recommender._titles = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    recommender.popularity = torch.tensor([0.0, 1.0, 0.5])
    scores = recommender.ground(torch.tensor([[0.0, 0.0]]))[0]
    # distances 0, 3, 2 -> normalised 0, 1, 2/3 -> divided by (1 + p)^2 = 1, 4, 2.25
    assert torch.allclose(scores, -torch.tensor([0.0, 1 / 4, (2 / 3) / 2.25]))
    assert scores.argsort(descending=True).tolist() == [0, 1, 2]  # popularity lifted item 1 over item 2


def test_scores_cover_every_item_and_report_exact_titles():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    recommender = _recommender(data)
    batch = CaseBatch(users=np.arange(3), histories=[s[-4:] for s in data.train[:3]], seen=data.train[:3])
    scores = recommender.score(batch)
    assert scores.shape == (3, data.n_items) and np.isfinite(scores).all()
    assert 0.0 <= recommender.diagnostics()["exact_title_share"] <= 1.0


def test_atomic_identifiers_are_refused_with_the_tokenizer_to_use():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    params = resolve(plugins.get_recommenders()["bigrec"].params, "tiny", TINY, "bigrec")
    recommender = BIGRecRecommender(params, seed=0)
    with pytest.raises(PluginError, match="tid"):
        recommender._build(ItemIdentifiers(kind="atomic", n_items=data.n_items), data)


def test_a_causal_lm_saved_with_save_pretrained_writes_and_grounds_with_lora(tmp_path, shared_cache):
    folder = saved_causal_lm(tmp_path / "tiny-causal-lm")
    row, evaluation, _ = execute(RunRequest("synthetic:0,100,48", "loo", "bigrec", params={
        **{f"recommender.{k}": v for k, v in TINY.items()}, "recommender.model_path": str(folder),
        "recommender.lora_rank": 4}), shared_cache, False)
    assert row["backbone"] == f"causal LM {folder} LoRA r4"
    assert (evaluation.rankings >= 0).all()
