"""The seq2seq recommender: token layout, training loss, decoding modes, and that it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark import plugins
from benchmark.components import ItemIdentifiers
from benchmark.data.splits import validation_sample
from benchmark.errors import ParameterError
from benchmark.params import resolve
from benchmark.runner import RunRequest, execute, load_split, resolve_method
from plugins.recommenders.seq2seq import EOS, PAD, Layout, Seq2SeqRecommender

# Small enough for a CPU test, large enough to learn the synthetic chains.
SMALL = {"recommender.d_model": 64, "recommender.heads": 2, "recommender.head_dim": 32, "recommender.d_ff": 128,
         "recommender.user_tokens": 0, "recommender.valid_cases": 100}


def _params(**overrides):
    spec = plugins.get_recommenders()["seq2seq"]
    return resolve(spec.params, "tiny", overrides, "seq2seq")


def test_code_layout_gives_one_token_per_level_and_squeezes_padding():
    codes = np.array([[0, 1, 0], [0, 1, 1], [2, 0, 0]])
    identifiers = ItemIdentifiers(kind="codes", n_items=3, codes=codes, vocab_sizes=(3, 2, 2))
    layout = Layout(identifiers, _params(user_tokens=4))
    first = layout.code_offsets[0]
    assert layout.code_offsets == [first, first + 3, first + 5] and layout.vocab_size == first + 7
    assert layout.outputs[1] == [first, first + 3 + 1, first + 5 + 1]
    assert layout.end_token is None
    ids, mask = layout.encoder_inputs(np.array([5, 2]), [np.array([2, 0]), np.array([1])])
    assert ids.shape == (2, 1 + 6 + 1)
    # user token, then item 2's codes, item 0's codes, the end token; the short row is padded at the end only.
    assert ids[0].tolist() == [layout.user_offset + 1, first + 2, first + 3, first + 5, first, first + 4, first + 5,
                               EOS]
    assert ids[1].tolist()[:5] == [layout.user_offset + 2, first, first + 4, first + 6, EOS]
    assert mask[1].tolist() == [1] * 5 + [0] * 3 and ids[1, 5:].tolist() == [PAD] * 3


def test_text_layout_uses_words_numbers_clashes_and_ends_with_the_end_token():
    texts = ["Toy Story (1995)", "Heat", "heat", "Toy  Story (1995)"]
    identifiers = ItemIdentifiers(kind="text", n_items=4, texts=texts)
    layout = Layout(identifiers, _params(user_tokens=0, prompt="next item after"))
    assert layout.end_token == EOS
    assert all(out[-1] == EOS for out in layout.outputs)
    assert len({tuple(o) for o in layout.outputs}) == 4  # "Toy  Story" tokenises like "Toy Story": numbered
    assert layout.outputs[1] != layout.outputs[2]  # case is kept
    ids, _ = layout.encoder_inputs(np.array([0]), [np.array([1])])
    heat = layout.outputs[1][:-1]
    assert ids[0].tolist() == layout.prompt + heat + layout.separator + [EOS]


def test_three_or_more_identical_texts_stay_apart_and_a_pair_keeps_the_vocabulary():
    # A pair is told apart by "# 2" read as unknown words (the vocabulary, and so every
    # identifier of a catalogue with pairs only, is what it was); from three copies on,
    # "# 2" and "# 3" would read alike, so the suffix words join the vocabulary.
    pair = ItemIdentifiers(kind="text", n_items=3, texts=["Heat", "Heat", "Alien"])
    layout = Layout(pair, _params(user_tokens=0, prompt="next"))
    assert len({tuple(o) for o in layout.outputs}) == 3
    assert layout.vocab_size == 3 + len(["next", ";", "Heat", "Alien"])
    triple = ItemIdentifiers(kind="text", n_items=5, texts=["Heat", "Heat", "Alien", "Heat", "Heat"])
    layout = Layout(triple, _params(user_tokens=0, prompt="next"))
    assert len({tuple(o) for o in layout.outputs}) == 5
    assert layout.unk not in {t for o in layout.outputs for t in o}
    assert layout.vocab_size == 3 + len(["next", ";", "Heat", "Alien", "#", "2", "3", "4"])
    assert layout.outputs[4][:-1] == layout.words("Heat # 4")


def test_ranking_guided_loss_is_cross_entropy_at_a_temperature():
    identifiers = ItemIdentifiers(kind="codes", n_items=3, codes=np.array([[0, 0], [0, 1], [1, 0]]),
                                  vocab_sizes=(2, 2))
    losses = {}
    for tau in (1.0, 0.5):
        recommender = Seq2SeqRecommender(_params(rank_temperature=tau, d_model=32, heads=2, head_dim=16, d_ff=32,
                                                 user_tokens=0, dropout=0.0), seed=0)
        recommender.device = torch.device("cpu")
        torch.manual_seed(0)
        recommender._build(identifiers)
        ids, mask = recommender.layout.encoder_inputs(np.array([0, 1]), [np.array([0]), np.array([1, 2])])
        labels = recommender.layout.target_table[torch.tensor([2, 0])]
        recommender.model.eval()
        losses[tau] = float(recommender._loss(ids, mask, labels).detach())
        logits = recommender.model(input_ids=ids, attention_mask=mask, labels=labels).logits
        expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]) / tau, labels.reshape(-1))
        assert losses[tau] == pytest.approx(float(expected), rel=1e-5)
    assert losses[0.5] != losses[1.0]


def test_parameter_faults_fail_before_fitting():
    with pytest.raises(ParameterError, match="decoding"):
        resolve_method("tiger", "tiny", {"recommender.decoding": "greedy"})
    with pytest.raises(ParameterError, match="rank_temperature"):
        resolve_method("letter-tiger", "tiny", {"recommender.rank_temperature": 0})


def test_validation_sample_is_fixed_and_shared():
    valid = load_split("synthetic", "loo").valid
    a, b = validation_sample(valid, 50), validation_sample(valid, 50)
    assert len(a) == 50 and a.targets.tolist() == b.targets.tolist() and a.users.tolist() == b.users.tolist()
    assert validation_sample(valid, None) is valid and validation_sample(valid, 10**6) is valid


def test_tiger_beats_popularity_on_planted_structure(shared_cache):
    pop, _, _ = execute(RunRequest("synthetic", "loo", "pop"), shared_cache, False)
    tiger, evaluation, split = execute(
        RunRequest("synthetic", "loo", "tiger", params={**SMALL, "recommender.epochs": 4,
                                                         "recommender.prefixes_per_user": 0}),
        shared_cache, False)
    assert tiger["metrics"]["all"]["ndcg@10"] > 2 * pop["metrics"]["all"]["ndcg@10"]
    # Constrained decoding: every list is full, of real items, none of them seen.
    assert (evaluation.rankings >= 0).all()
    for row, seen in enumerate(split.test.seen):
        assert not set(evaluation.rankings[row].tolist()) & set(seen.tolist())
    assert tiger["extra_metrics"]["generation/invalid_id_share"] == 0.0
    assert tiger["info"]["epochs"] and "loss" in tiger["info"]["epochs"][0]


def test_unconstrained_decoding_records_the_invalid_identifier_share(shared_cache):
    row, evaluation, _ = execute(
        RunRequest("synthetic", "loo", "tiger", params={**SMALL, "recommender.epochs": 1,
                                                         "recommender.decoding": "unconstrained"}),
        shared_cache, False)
    share = row["extra_metrics"]["generation/invalid_id_share"]
    assert 0.0 < share <= 1.0
    assert (evaluation.rankings >= -1).all()


def test_board_notes_explain_tiny_rows_and_generation_diagnostics():
    from benchmark.leaderboard import _profile_notes

    baseline = {"profile": "tiny", "extra_metrics": {}, "tuned_trials": 0}
    generative = {"profile": "tiny", "extra_metrics": {"generation/invalid_id_share": 0.0}, "tuned_trials": 0}
    paper = {"profile": "paper", "extra_metrics": {}, "tuned_trials": 3}
    assert not any("beam search" in n for n in _profile_notes([baseline]))
    notes = " ".join(_profile_notes([baseline, generative]))
    assert "CPU budget" in notes and "beam search" in notes and "tuned" not in notes
    assert "CPU budget" not in " ".join(_profile_notes([paper])) and "Optuna" in " ".join(_profile_notes([paper]))


def _save_pretrained_t5(path, words):
    """A tiny T5 checkpoint with a word-level tokenizer, as a user's local model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    tokenizer.save_pretrained(path)
    config = T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5ForConditionalGeneration(config).save_pretrained(path)
    return len(vocab)


@pytest.mark.parametrize("method", ["tiger", "p5-tid"])
def test_a_pretrained_checkpoint_keeps_its_tokenizer_and_gains_code_and_user_tokens(method, tmp_path):
    split = load_split("synthetic", "loo")
    words = {w for text in split.dataset.catalog.texts() for w in text.replace(":", " ").replace(";", " ").split()}
    words |= {"Considering", "the", "user", "has", "interacted", "with", "items", ";", "#", "(", ")"}
    words |= {str(i) for i in range(200)}
    size = _save_pretrained_t5(tmp_path / "t5", sorted(words))
    row, evaluation, _ = execute(
        RunRequest("synthetic", "loo", method,
                   params={"recommender.model_path": str(tmp_path / "t5"), "recommender.epochs": 1,
                           "recommender.user_tokens": 10, "recommender.valid_cases": 50}),
        tmp_path / "cache", False)
    assert row["backbone"] == f"T5 {tmp_path / 't5'}"
    assert (evaluation.rankings >= 0).all()
    # The model's own ids for words; user (and code) tokens appended after its vocabulary.
    resolved = resolve_method(method, "tiny", {"recommender.model_path": str(tmp_path / "t5"),
                                               "recommender.user_tokens": 10})
    recommender = Seq2SeqRecommender(resolved.recommender_params, 0)
    recommender.device = torch.device("cpu")
    from transformers import AutoTokenizer

    identifiers = ItemIdentifiers(kind="codes", n_items=2, codes=np.array([[0, 1], [1, 0]]), vocab_sizes=(2, 2))
    recommender._build(identifiers)
    assert recommender.layout.user_offset == size and recommender.layout.code_offsets == [size + 10, size + 12]
    assert recommender.model.get_input_embeddings().num_embeddings >= size + 14
    assert recommender.layout.words("items") == AutoTokenizer.from_pretrained(tmp_path / "t5")(
        "items", add_special_tokens=False)["input_ids"]


def test_a_checkpoint_that_is_not_t5_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=8).save_pretrained(tmp_path)
    recommender = Seq2SeqRecommender(_params(model_path=str(tmp_path)), 0)
    recommender.device = torch.device("cpu")
    identifiers = ItemIdentifiers(kind="codes", n_items=1, codes=np.array([[0]]), vocab_sizes=(1,))
    with pytest.raises(ParameterError, match="give a T5 checkpoint"):
        recommender._build(identifiers)


def test_board_reading_notes_come_from_the_notes_folder(tmp_path):
    from benchmark.leaderboard import _reading_file, _reading_notes

    assert _reading_notes(*_reading_file(tmp_path, "ml-100k-loo")) == []
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "ml-100k-loo.md").write_text("- why tiger trails pop here\n")
    path, text = _reading_file(tmp_path, "ml-100k-loo")
    assert path == tmp_path / "notes" / "ml-100k-loo.md"
    lines = _reading_notes(path, text)
    assert "## Reading these results" in lines and "- why tiger trails pop here" in lines
    assert _reading_notes(*_reading_file(tmp_path, "ml-100k-temporal")) == []
