"""The ``llm`` recommender: prompts and code tokens, the response-only loss, loading a saved
causal LM with LoRA, and parameter faults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import saved_causal_lm

from benchmark import plugins
from benchmark.components import ItemIdentifiers, TrainingData
from benchmark.errors import ParameterError
from benchmark.methods import resolve_method
from benchmark.nn.causal_lm import left_padded, offline_tokenizer
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute, load_split
from plugins.recommenders.llm import LLMRecommender, Prompts

TINY = {"recommender.d_model": 32, "recommender.heads": 2, "recommender.head_dim": 16, "recommender.d_ff": 64,
        "recommender.layers": 2, "recommender.epochs": 1, "recommender.valid_cases": 50}


def _identifiers() -> ItemIdentifiers:
    return ItemIdentifiers(kind="codes", n_items=3, codes=np.array([[0, 1], [1, 0], [1, 1]]), vocab_sizes=(2, 2))


def test_code_tokens_follow_the_vocabulary_and_prompts_hold_them():
    tokenizer = offline_tokenizer("test")
    prompts = Prompts(tokenizer, _identifiers(), ["Toy Story", "Heat", "Casino"], max_title_tokens=8)
    base = len(tokenizer)
    assert prompts.vocab_size == base + 4
    assert prompts.codes == [[base, base + 3], [base + 1, base + 2], [base + 1, base + 3]]
    prompt, response = prompts.sample("seq", np.array([2, 0]), 1)
    assert response == prompts.codes[1]
    assert prompts.codes[2] + prompts.codes[0] == prompt[prompt.index(base + 1):][:4]
    prompt, response = prompts.sample("index2item", None, 1)
    assert response == prompts.words("Heat") + [prompts.eos] and prompts.codes[1][0] in prompt
    prompt, response = prompts.sample("titles2seq", np.array([0, 2]), 1)
    assert response == prompts.codes[1] and all(t < base for t in prompt)
    ids, mask = left_padded([[5, 6, 7], [8]], prompts.pad)
    assert ids.tolist() == [[5, 6, 7], [prompts.pad, prompts.pad, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_loss_is_the_response_tokens_cross_entropy_at_a_temperature():
    data = TrainingData.from_split(load_split("synthetic", "loo"))
    identifiers = ItemIdentifiers(kind="codes", n_items=data.n_items,
                                  codes=np.stack([np.arange(data.n_items) % 7, np.arange(data.n_items) // 7], 1),
                                  vocab_sizes=(7, 18))
    spec = plugins.get_recommenders()["llm"]
    for tau in (1.0, 0.5):
        params = resolve(spec.params, "tiny", {k.split(".", 1)[1]: v for k, v in TINY.items()}
                         | {"rank_temperature": tau, "dropout": 0.0, "tasks": "seq,index2item"}, "llm")
        recommender = LLMRecommender(params, seed=0)
        recommender.device = torch.device("cpu")
        recommender._build(identifiers, data)
        recommender.model.eval()
        batch = [("seq", data.train[0][:3], int(data.train[0][3])), ("index2item", None, 5)]
        loss = float(recommender._loss(batch).detach())
        pairs = [recommender.prompts.sample(*sample) for sample in batch]
        ids, mask = left_padded([a + b for a, b in pairs], recommender.prompts.pad)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = recommender.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        expected = []
        for row, (_, response) in enumerate(pairs):
            predicting = logits[row, ids.shape[1] - len(response) - 1:-1]
            expected.append(torch.nn.functional.cross_entropy(predicting / tau, torch.tensor(response),
                                                              reduction="none"))
        assert loss == pytest.approx(float(torch.cat(expected).mean().detach()), rel=1e-4)


def test_parameter_faults_fail_before_fitting():
    with pytest.raises(ParameterError, match="tasks"):
        resolve_method("lcrec", "tiny", {"recommender.tasks": "seq,chat"})
    with pytest.raises(ParameterError, match="device"):
        resolve_method("lcrec", "tiny", {"recommender.device": "tpu"})


def test_a_causal_lm_saved_with_save_pretrained_loads_with_lora(tmp_path, shared_cache):
    folder = saved_causal_lm(tmp_path / "tiny-causal-lm")
    row, evaluation, split = execute(RunRequest("synthetic:0,100,48", "loo", "lcrec", params={
        **TINY, "recommender.model_path": str(folder), "recommender.lora_rank": 4,
        "recommender.tasks": "seq"}), shared_cache, False)
    assert row["backbone"] == f"causal LM {folder} LoRA r4"
    assert (evaluation.rankings >= 0).all()
    for case, seen in enumerate(split.test.seen):  # seen items are pruned in the trie
        assert not set(evaluation.rankings[case].tolist()) & set(seen.tolist())
