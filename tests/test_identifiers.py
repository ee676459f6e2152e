"""Shared identifier structures: disambiguation, collision rate and the prefix trie."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.code_trie import CodeTrie, collision_rate, disambiguate


def test_disambiguate_numbers_items_sharing_codes_in_index_order() -> None:
    codes = np.array([[1, 2], [0, 0], [1, 2], [3, 1], [1, 2], [0, 0]])
    result, collisions = disambiguate(codes)
    assert result.shape == (6, 3)
    np.testing.assert_array_equal(result[:, :2], codes)
    np.testing.assert_array_equal(result[:, 2], [0, 0, 1, 0, 2, 1])
    assert collisions == 5
    assert len(np.unique(result, axis=0)) == 6


def test_disambiguate_unique_codes_get_zero_and_no_collisions() -> None:
    result, collisions = disambiguate(np.array([[0], [1], [2]]))
    np.testing.assert_array_equal(result, [[0, 0], [1, 0], [2, 0]])
    assert collisions == 0


def test_disambiguate_zero_levels_and_empty_input() -> None:
    result, collisions = disambiguate(np.zeros((3, 0), np.int64))
    np.testing.assert_array_equal(result, [[0], [1], [2]])
    assert collisions == 3
    empty, none = disambiguate(np.zeros((0, 2), np.int64))
    assert empty.shape == (0, 3) and none == 0


def test_disambiguate_rejects_one_dimensional_codes() -> None:
    with pytest.raises(ValueError, match="shape"):
        disambiguate(np.array([1, 2, 3]))


def test_collision_rate() -> None:
    assert collision_rate(np.array([[1, 2], [1, 2], [0, 1], [0, 2]])) == 0.5
    assert collision_rate(np.array([[0], [1]])) == 0.0
    assert collision_rate(np.zeros((0, 2))) == 0.0
    codes, _ = disambiguate(np.array([[1], [1], [1]]))
    assert collision_rate(codes) == 0.0


@pytest.fixture
def trie() -> CodeTrie:
    codes = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [2, 0, 0]])
    return CodeTrie(codes, vocab_sizes=(3, 3, 2))


def test_trie_next_codes_follow_prefixes(trie: CodeTrie) -> None:
    assert len(trie) == 4
    np.testing.assert_array_equal(trie.next_codes(()), [0, 2])
    np.testing.assert_array_equal(trie.next_codes((0,)), [1, 2])
    np.testing.assert_array_equal(trie.next_codes((0, 1)), [0, 1])
    assert len(trie.next_codes((1,))) == 0  # no item starts with 1
    assert len(trie.next_codes((0, 1, 0))) == 0  # a full identifier has no continuation


def test_trie_items(trie: CodeTrie) -> None:
    assert trie.item((0, 1, 1)) == 1
    assert trie.item((2, 0, 0)) == 3
    assert trie.item((0, 1)) is None
    assert trie.item((1, 1, 1)) is None
    np.testing.assert_array_equal(trie.items_with_prefix((0,)), [0, 1, 2])
    np.testing.assert_array_equal(trie.items_with_prefix(()), [0, 1, 2, 3])
    np.testing.assert_array_equal(trie.items_with_prefix((0, 1, 1)), [1])
    assert len(trie.items_with_prefix((1,))) == 0


def test_trie_allowed_mask_for_beams(trie: CodeTrie) -> None:
    mask = trie.allowed_mask([(), (0,), (0, 2), (1,)], vocab_size=4)
    expected = np.array([
        [True, False, True, False],
        [False, True, True, False],
        [True, False, False, False],
        [False, False, False, False],
    ])
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="vocab_size"):
        trie.allowed_mask([()], vocab_size=2)


def test_trie_rejects_duplicate_codes_and_out_of_vocab_codes() -> None:
    with pytest.raises(ValueError, match="disambiguate"):
        CodeTrie(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="vocab"):
        CodeTrie(np.array([[0, 3]]), vocab_sizes=(1, 3))
    assert CodeTrie(np.array([[0, 3], [1, 0]])).vocab_sizes == (2, 4)
