"""Constrained beam search: valid distinct items in score order, exhaustive-search
agreement on tiny tries, pruning of excluded items, unconstrained diagnostics, and the
same top-20 as ``transformers``' ``generate`` with a trie ``prefix_allowed_tokens_fn``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from benchmark.nn.beam_search import TokenTrie, beam_search


class TableDecoder:
    """Deterministic logits from (case, decoded prefix): a stand-in for a model."""

    def __init__(self, n_cases: int, beam: int, vocab: int, seed: int = 0):
        self.n_cases, self.beam, self.vocab = n_cases, beam, vocab
        self.rng = np.random.default_rng(seed)
        self.table: dict[tuple, np.ndarray] = {}
        # One row per case before the first expansion (the protocol), then beam rows per case.
        self.cases = list(range(n_cases))
        self.prefixes: list[tuple[int, ...]] = [()] * n_cases

    def logits_for(self, case: int, prefix: tuple[int, ...]) -> np.ndarray:
        key = (case, prefix)
        if key not in self.table:
            self.table[key] = self.rng.normal(0, 2, self.vocab)
        return self.table[key]

    def step(self, tokens, parents):
        if tokens is not None:
            parents = parents.tolist()
            assert all(self.cases[p] == row // self.beam for row, p in enumerate(parents)), "parent of another case"
            self.prefixes = [self.prefixes[p] + (int(t),) for p, t in zip(parents, tokens.tolist())]
            self.cases = [self.cases[p] for p in parents]
        rows = [self.logits_for(case, prefix) for case, prefix in zip(self.cases, self.prefixes)]
        return torch.tensor(np.stack(rows), dtype=torch.float32)

    def sequence_logprob(self, case: int, sequence: list[int]) -> float:
        total = 0.0
        for depth, token in enumerate(sequence):
            logits = torch.tensor(self.logits_for(case, tuple(sequence[:depth])), dtype=torch.float64)
            total += float(torch.log_softmax(logits, 0)[token])
        return total


def _codes_trie(n_items=12, levels=3, per_level=3, vocab=None, seed=0):
    rng = np.random.default_rng(seed)
    every = list(itertools.product(range(per_level), repeat=levels))
    chosen = [every[i] for i in rng.choice(len(every), n_items, replace=False)]
    offset = 2
    sequences = [[offset + level * per_level + c for level, c in enumerate(row)] for row in chosen]
    vocab = vocab or offset + levels * per_level
    return TokenTrie(sequences, vocab), sequences


def _exhaustive(decoder: TableDecoder, sequences, case: int, exclude=()):
    scores = [(decoder.sequence_logprob(case, s), item) for item, s in enumerate(sequences) if item not in exclude]
    return [item for _, item in sorted(scores, key=lambda x: -x[0])]


def test_trie_rejects_prefixes_and_duplicates_and_finds_children():
    with pytest.raises(ValueError, match="share the token sequence"):
        TokenTrie([[3, 4], [3, 4]], 10)
    with pytest.raises(ValueError, match="prefix"):
        TokenTrie([[3, 4], [3, 4, 5]], 10)
    with pytest.raises(ValueError, match="prefix"):
        TokenTrie([[3, 4, 5], [3, 4]], 10)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        TokenTrie([[3, 12]], 10)
    trie = TokenTrie([[3, 4], [3, 5], [6, 4]], 10)
    assert trie.n_nodes == 6 and trie.max_length == 2
    root_children = trie.child(torch.tensor([0, 0, 0]), torch.tensor([3, 6, 4]))
    assert root_children[2] == -1 and root_children[0] != root_children[1]
    leaf = trie.child(root_children[:1], torch.tensor([5]))
    assert int(trie.node_item[leaf]) == 1
    assert [trie.sequence(i) for i in range(3)] == [[3, 4], [3, 5], [6, 4]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_as_wide_as_the_trie_equals_exhaustive_search(seed):
    trie, sequences = _codes_trie(n_items=12, seed=seed)
    n_cases = 4
    decoder = TableDecoder(n_cases, beam=12, vocab=trie.vocab_size, seed=seed)
    result = beam_search(decoder, trie, n_cases, beam_size=12)
    for case in range(n_cases):
        assert result.items[case].tolist() == _exhaustive(decoder, sequences, case)
        expected = [decoder.sequence_logprob(case, sequences[i]) for i in result.items[case].tolist()]
        assert np.allclose(result.scores[case].numpy(), expected, atol=1e-4)


def test_narrow_beam_returns_valid_distinct_items_in_score_order():
    trie, sequences = _codes_trie(n_items=25, levels=3, per_level=4, seed=3)
    decoder = TableDecoder(6, beam=5, vocab=trie.vocab_size, seed=3)
    result = beam_search(decoder, trie, 6, beam_size=5)
    for case in range(6):
        items = result.items[case].tolist()
        assert all(0 <= i < 25 for i in items) and len(set(items)) == 5
        scores = result.scores[case].numpy()
        assert (np.diff(scores) <= 1e-6).all()
        assert np.allclose(scores, [decoder.sequence_logprob(case, sequences[i]) for i in items], atol=1e-4)
    assert result.invalid_share == 0.0


def test_excluded_items_are_pruned_and_lists_stay_full():
    trie, sequences = _codes_trie(n_items=12, seed=4)
    decoder = TableDecoder(3, beam=8, vocab=trie.vocab_size, seed=4)
    # Case 0 excludes its four favourite items, case 1 a whole subtree's worth, case 2 nothing.
    favourite = _exhaustive(TableDecoder(3, 8, trie.vocab_size, seed=4), sequences, 0)[:4]
    subtree = [i for i, s in enumerate(sequences) if s[0] == sequences[0][0]]
    exclude = [np.array(favourite), np.array(subtree), np.array([], np.int64)]
    # A repeated item counts once (else its subtree would look emptier than it is).
    repeated = [np.r_[items, items] for items in exclude]
    result = beam_search(decoder, trie, 3, beam_size=8, exclude=repeated)
    for case in range(3):
        items = result.items[case].tolist()
        assert not set(items) & set(exclude[case].tolist())
        remaining = 12 - len(exclude[case])
        assert len([i for i in items if i >= 0]) == min(8, remaining)
    # As wide as the trie, pruning still equals exhaustive search over what is left.
    wide = TableDecoder(3, beam=12, vocab=trie.vocab_size, seed=4)
    result = beam_search(wide, trie, 3, beam_size=12, exclude=exclude)
    for case in range(3):
        expected = _exhaustive(wide, sequences, case, set(exclude[case].tolist()))
        assert [i for i in result.items[case].tolist() if i >= 0] == expected


def test_short_catalog_pads_with_minus_one():
    trie = TokenTrie([[2, 5], [3, 5]], 8)
    result = beam_search(TableDecoder(2, 4, 8), trie, 2, beam_size=4, exclude=[np.array([0]), np.array([])])
    assert result.items[0].tolist() == [1, -1, -1, -1]
    assert sorted(result.items[1].tolist()[:2]) == [0, 1] and result.items[1].tolist()[2:] == [-1, -1]


def test_a_case_that_excludes_every_item_gets_no_items_and_the_others_are_unaffected():
    trie, sequences = _codes_trie(n_items=12, seed=7)
    decoder = TableDecoder(2, beam=12, vocab=trie.vocab_size, seed=7)
    result = beam_search(decoder, trie, 2, beam_size=12, exclude=[np.arange(12), np.array([], np.int64)])
    assert result.items[0].tolist() == [-1] * 12 and not torch.isfinite(result.scores[0]).any()
    assert result.items[1].tolist() == _exhaustive(decoder, sequences, 1)


def test_equal_scores_go_to_the_lower_index_whatever_topk_does():
    from benchmark.nn.beam_search import _top

    inf = float("inf")
    flat = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0], [5.0, 2.0, 5.0, 1.0, 5.0, 0.0],
                         [-inf, 1.0, -inf, -inf, 0.5, -inf]])
    top, index = _top(flat, 2)
    assert index.tolist() == [[1, 2], [0, 2], [1, 4]]
    assert top.tolist() == [[3.0, 3.0], [5.0, 5.0], [1.0, 0.5]]
    top, index = _top(flat, 4)  # best first; the tie at the cut (and inside the list) by index
    assert index.tolist() == [[1, 2, 3, 5], [0, 2, 4, 1], [1, 4, 0, 2]]
    # Many ties, a random layout: the kept set is the lowest indices among the tied.
    values = torch.tensor(np.random.default_rng(0).integers(0, 3, (50, 40)), dtype=torch.float32)
    top, index = _top(values, 7)
    for row, (scores, kept) in enumerate(zip(top.tolist(), index.tolist())):
        expected = sorted(range(40), key=lambda i: (-values[row, i].item(), i))[:7]
        assert kept == expected and scores == [values[row, i].item() for i in expected]


def test_variable_length_identifiers_with_an_end_token():
    end = 1
    sequences = [[4, 5, end], [4, end], [6, 7, 8, end], [6, 7, end], [9, end]]
    trie = TokenTrie(sequences, 12)
    decoder = TableDecoder(3, beam=5, vocab=12, seed=5)
    result = beam_search(decoder, trie, 3, beam_size=5, end_token=end)
    for case in range(3):
        assert result.items[case].tolist() == _exhaustive(decoder, sequences, case)


def test_unconstrained_decoding_reports_identifiers_that_name_no_item():
    trie, sequences = _codes_trie(n_items=6, levels=3, per_level=3, seed=6)

    class LeaningDecoder(TableDecoder):
        """Prefers tokens that stay in the trie, without forbidding the others."""

        def logits_for(self, case, prefix):
            logits = super().logits_for(case, prefix).copy()
            node = torch.tensor([0])
            for token in prefix:
                node = trie.child(node, torch.tensor([token]))
            if int(node) >= 0:
                start, count = int(trie.node_start[node]), int(trie.node_count[node])
                logits[trie.edge_token[start:start + count].numpy()] += 6.0
            return logits

    result = beam_search(LeaningDecoder(4, beam=10, vocab=trie.vocab_size, seed=6), trie, 4, beam_size=10,
                         constrained=False)
    valid = result.items >= 0
    assert (result.invalid == ~valid).all()
    # Only 6 of the 11^3 token paths name an item: the best beams do, the rest do not.
    assert valid[:, 0].all()
    assert 0.0 < result.invalid_share < 1.0
    # Where every path is an item, nothing is invalid.
    full = [list(p) for p in itertools.product([0, 1], [0, 1])]
    result = beam_search(TableDecoder(2, 4, 2), TokenTrie(full, 2), 2, beam_size=4, constrained=False)
    assert result.invalid_share == 0.0 and (result.items >= 0).all()


def prefix_allowed_tokens(trie: TokenTrie, prompt_length: int):
    """A ``generate`` ``prefix_allowed_tokens_fn`` walking ``trie`` from the token after the
    first ``prompt_length`` ones (pad, 0, once an identifier is complete)."""

    def allowed(_, sentence):
        node = torch.tensor([0])
        for token in sentence[prompt_length:].tolist():
            node = trie.child(node, torch.tensor([token]))
        start, count = int(trie.node_start[node]), int(trie.node_count[node])
        return trie.edge_token[start:start + count].tolist() or [0]

    return allowed


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("short_prefix", [12, 0])
def test_t5_decoder_steps_give_the_models_own_logits(gated, short_prefix, monkeypatch):
    """The hand-written decoding loop equals T5's forward on the same prefixes, after the
    first step's expansion to beams and after arbitrary reorders (relu and tied output,
    gated-gelu and an untied head; a padded input), with self-attention by elementwise
    products (short prefixes) and by matrix products (long ones)."""
    from transformers import T5Config, T5ForConditionalGeneration

    from benchmark.nn import decoders
    from benchmark.nn.decoders import T5Decoder

    monkeypatch.setattr(decoders, "SHORT_PREFIX", short_prefix)

    torch.manual_seed(1)
    vocab, cases, beams = 40, 3, 4
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=3,
                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=not gated)
    model = T5ForConditionalGeneration(config).eval()
    ids = torch.randint(3, vocab, (cases, 7))
    mask = torch.ones_like(ids)
    ids[1, 4:], mask[1, 4:] = 0, 0

    def reference(rows_of_case: int, prefixes: torch.Tensor) -> torch.Tensor:
        inputs = ids.repeat_interleave(rows_of_case, 0), mask.repeat_interleave(rows_of_case, 0)
        return model(input_ids=inputs[0], attention_mask=inputs[1], decoder_input_ids=prefixes).logits[:, -1]

    with torch.no_grad():
        decoder = T5Decoder(model, ids, mask)
        prefixes = torch.zeros(cases, 1, dtype=torch.long)
        assert torch.allclose(decoder.step(None, None), reference(1, prefixes), atol=1e-4)
        parents = torch.arange(cases).repeat_interleave(beams)  # expand each case to its beams
        for _ in range(3):
            tokens = torch.randint(3, vocab, (cases * beams,))
            prefixes = torch.cat([prefixes[parents], tokens[:, None]], dim=1)
            assert torch.allclose(decoder.step(tokens, parents), reference(beams, prefixes), atol=1e-4)
            # Beams of a case continue one another's prefixes in any order, some twice.
            parents = (torch.randint(0, beams, (cases, beams)) + torch.arange(cases)[:, None] * beams).reshape(-1)


def test_same_top20_as_generate_with_a_trie_prefix_function():
    from transformers import T5Config, T5ForConditionalGeneration

    from benchmark.nn.decoders import T5Decoder

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    levels, per_level, offset = 3, 8, 3
    codes = np.unique(rng.integers(0, per_level, (400, levels)), axis=0)[:300]
    sequences = [[offset + level * per_level + c for level, c in enumerate(row)] for row in codes]
    vocab = offset + levels * per_level
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      feed_forward_proj="relu")
    model = T5ForConditionalGeneration(config).eval()
    ids = torch.randint(3, vocab, (5, 12))
    mask = torch.ones_like(ids)
    ids[0, 8:], mask[0, 8:] = 0, 0  # a padded input
    trie = TokenTrie(sequences, vocab)
    allowed = prefix_allowed_tokens(trie, prompt_length=1)  # after the decoder start token

    with torch.no_grad():
        ours = beam_search(T5Decoder(model, ids, mask), trie, 5, beam_size=20)
        generated = model.generate(input_ids=ids, attention_mask=mask, num_beams=20, num_return_sequences=20,
                                   max_new_tokens=levels, prefix_allowed_tokens_fn=allowed, do_sample=False)
    item_of = {tuple(s): i for i, s in enumerate(sequences)}
    theirs = [[item_of[tuple(row)] for row in generated[case * 20:(case + 1) * 20, 1:].tolist()] for case in range(5)]
    assert ours.items.tolist() == theirs


def test_causal_lm_decoder_gives_generates_top20_after_left_padded_prompts():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from benchmark.nn.decoders import CausalLMDecoder

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    levels, per_level, offset = 3, 8, 20
    codes = np.unique(rng.integers(0, per_level, (400, levels)), axis=0)[:200]
    sequences = [[offset + level * per_level + c for level, c in enumerate(row)] for row in codes]
    vocab = offset + levels * per_level
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0, eos_token_id=1)
    model = Qwen2ForCausalLM(config).eval()
    ids = torch.randint(3, offset, (4, 9))
    ids[0, :4] = 0  # left padding: real tokens last
    ids[2, :7] = 0
    mask = (ids != 0).long()
    trie = TokenTrie(sequences, vocab)
    allowed = prefix_allowed_tokens(trie, prompt_length=ids.shape[1])

    with torch.no_grad():
        ours = beam_search(CausalLMDecoder(model, ids, mask), trie, 4, beam_size=20)
        generated = model.generate(input_ids=ids, attention_mask=mask, num_beams=20, num_return_sequences=20,
                                   max_new_tokens=levels, prefix_allowed_tokens_fn=allowed, do_sample=False,
                                   length_penalty=0.0, pad_token_id=0)
    item_of = {tuple(s): i for i, s in enumerate(sequences)}
    theirs = [[item_of[tuple(row)] for row in generated[case * 20:(case + 1) * 20, ids.shape[1]:].tolist()]
              for case in range(4)]
    assert ours.items.tolist() == theirs
