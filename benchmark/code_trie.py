"""What every ``codes`` identifier shares: disambiguation, code statistics, the prefix trie.

A ``codes`` tokenizer gives each item a tuple of discrete codes, one per level. Two items
may land on the same tuple (same category path, same leaf cluster); following Hua et al.,
"How to Index Item IDs for Recommendation Foundation Models" (SIGIR-AP'23), a final level
numbers the items that share a tuple, so every identifier is unique (:func:`disambiguate`).

:func:`collision_rate` and :func:`codebook_utilisation` are read both by tokenizers while
fitting (they record them in ``ItemIdentifiers.info``) and by the identifier diagnostics
(:mod:`benchmark.evaluation.identifier_diagnostics`), so they live here, outside evaluation.

Generative recommenders decode an identifier level by level and use :class:`CodeTrie` for
constrained decoding: at each step only codes that extend a prefix of some real item are
allowed, so beam search never produces an identifier that names no item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _group_of_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's distinct code tuple, and the size of each such group."""
    if codes.shape[1] == 0:
        # Zero levels: every item shares the empty tuple (np.unique cannot take axis=0 here).
        return np.zeros(len(codes), np.int64), np.array([len(codes)], np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def _as_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (n_items, levels), got shape {codes.shape}")
    return codes


def disambiguate(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Append a level numbering items that share all codes; return it and the collision count.

    ``codes`` has shape (n_items, L). The new last column holds 0..m-1 among the m items
    sharing a tuple, in item-index order (item indices are a seeded random permutation, so
    this number carries no time information). Returns the (n_items, L+1) array and the
    number of items whose tuple was shared before disambiguation.
    """
    codes = _as_codes(codes)
    n = len(codes)
    if n == 0:
        return np.zeros((0, codes.shape[1] + 1), np.int64), 0
    group, counts = _group_of_rows(codes)
    # A stable sort by group keeps item-index order inside each group.
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - group_start
    collisions = int((counts[group] > 1).sum())
    return np.column_stack([codes, rank]), collisions


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose full code tuple is shared with at least one other item."""
    codes = _as_codes(codes)
    if len(codes) == 0:
        return 0.0
    group, counts = _group_of_rows(codes)
    return float((counts[group] > 1).mean())


def codebook_utilisation(codes: np.ndarray, vocab_sizes: Sequence[int]) -> list[float]:
    """Per level, the share of the level's vocabulary that at least one item uses."""
    return [len(np.unique(codes[:, level])) / vocab_sizes[level] for level in range(codes.shape[1])]


class CodeTrie:
    """Prefix trie over unique item code tuples, for constrained decoding.

    Built once in O(n_items x levels) with dicts keyed by prefix tuples. ``vocab_sizes``
    bounds each level's codes (default: the largest code per level plus one).
    """

    def __init__(self, codes: np.ndarray, vocab_sizes: Sequence[int] | None = None):
        codes = _as_codes(codes)
        n, depth = codes.shape
        self.depth = depth
        if vocab_sizes is None:
            vocab_sizes = tuple(int(v) + 1 for v in codes.max(axis=0)) if n else (0,) * depth
        self.vocab_sizes = tuple(int(v) for v in vocab_sizes)
        if len(self.vocab_sizes) != depth:
            raise ValueError(f"vocab_sizes has {len(self.vocab_sizes)} levels but codes have {depth}")
        if n and ((codes < 0).any() or (codes >= np.array(self.vocab_sizes)).any()):
            raise ValueError(f"codes must lie in [0, vocab size) per level; vocab_sizes={self.vocab_sizes}")
        self._item: dict[tuple[int, ...], int] = {}
        children: dict[tuple[int, ...], set[int]] = {}
        members: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(codes.tolist()):
            key = tuple(row)
            if key in self._item:
                raise ValueError(
                    f"items {self._item[key]} and {i} share codes {key}; call disambiguate() first"
                )
            self._item[key] = i
            for level in range(depth + 1):
                prefix = key[:level]
                members.setdefault(prefix, []).append(i)
                if level < depth:
                    children.setdefault(prefix, set()).add(key[level])
        self._next = {p: np.array(sorted(s), np.int64) for p, s in children.items()}
        self._members = {p: np.array(m, np.int64) for p, m in members.items()}

    def __len__(self) -> int:
        return len(self._item)

    def next_codes(self, prefix: tuple[int, ...]) -> np.ndarray:
        """Sorted codes that extend ``prefix`` towards some item (empty at a full identifier)."""
        return self._next.get(tuple(prefix), np.zeros(0, np.int64))

    def item(self, codes: tuple[int, ...]) -> int | None:
        """The item with exactly these codes, or ``None``."""
        return self._item.get(tuple(codes))

    def items_with_prefix(self, prefix: tuple[int, ...]) -> np.ndarray:
        """Items (ascending index) whose codes start with ``prefix``."""
        return self._members.get(tuple(prefix), np.zeros(0, np.int64))

    def allowed_mask(self, prefixes: list[tuple[int, ...]], vocab_size: int) -> np.ndarray:
        """Boolean mask (len(prefixes), vocab_size): which next codes each beam may take."""
        mask = np.zeros((len(prefixes), vocab_size), bool)
        for row, prefix in enumerate(prefixes):
            allowed = self.next_codes(prefix)
            if len(allowed) and allowed[-1] >= vocab_size:
                raise ValueError(f"prefix {tuple(prefix)} allows code {allowed[-1]} >= vocab_size={vocab_size}")
            mask[row, allowed] = True
        return mask
