"""Constrained beam search over a token trie, for every generative recommender.

A generative recommender writes an item's identifier token by token (TIGER's codes, a
title's words, an LLM's new code tokens). :class:`TokenTrie` holds every item's token
sequence as tensors; :func:`beam_search` decodes a batch of cases at once, with beams
as tensors (no per-beam Python loop), and returns each case's best ``beam_size`` items:

- **Constrained** (the default): at each step a beam may only take a token that extends
  a prefix of some item, so every returned identifier names an item, and the beams of a
  case are distinct items in score order.
- **Excluded items** (the user's seen items under the default protocol) are pruned in
  the trie: a token is allowed only while at least one non-excluded item lies below it,
  so an excluded item is never returned and no beam is spent on a dead end. With enough
  items left, a case gets a full list of ``beam_size`` items.
- **Unconstrained**: any token at any step; the result says which beams named no item
  (``invalid``), the diagnostic behind the "share of invalid identifiers".

The model side is a :class:`Decoder`: it computes what it can once per case (an
encoder pass, cross-attention keys and values) and returns next-token logits for
``n_cases x beam_size`` rows, reordering its own per-beam state (a self-attention cache)
by the parent index of each row. Scores are sums of log-softmax probabilities over the
model's whole vocabulary, as ``transformers``' ``generate`` computes them, so for
fixed-length identifiers the top lists equal those of ``generate`` with a trie-based
``prefix_allowed_tokens_fn`` (tested). Only a beam's allowed continuations compete at each
step (the children of its trie node, not the whole vocabulary), and equal scores go to the
earlier beam, then the smaller token, whatever ``topk``'s algorithm does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


class Decoder(Protocol):
    """Next-token logits for the rows of a beam search.

    The first call decodes one row per case (every beam of a case starts from the same
    empty prefix, so it is computed once); later calls decode ``n_cases x beam_size`` rows,
    case-major (row ``c * beam_size + b`` is beam ``b`` of case ``c``).
    """

    def step(self, tokens: torch.Tensor | None, parents: torch.Tensor | None) -> torch.Tensor:
        """Logits ``(rows, vocab)`` for the next token.

        The first call gets ``None`` twice (nothing decoded yet) and returns one row per
        case. Later calls get the token each row just took and ``parents``: the row of the
        previous call whose state it continues (same case); the decoder reorders, or on the
        second call expands, its per-row state by ``parents`` before feeding ``tokens``.
        """
        ...


class TokenTrie:
    """Every item's token sequence as a prefix trie in tensors.

    ``sequences[i]`` are item i's tokens (ids below ``vocab_size``). No sequence may be a
    proper prefix of another (end variable-length identifiers with an end token) and no
    two items may share one. Nodes are numbered from the root (0); edges are sorted by
    ``(parent, token)`` so a child is found by a binary search on ``parent * vocab + token``.
    """

    def __init__(self, sequences: Sequence[Sequence[int]], vocab_size: int):
        self.vocab_size = int(vocab_size)
        node_of: dict[tuple[int, ...], int] = {(): 0}
        parents: list[int] = []
        tokens: list[int] = []
        item_at: dict[int, int] = {}
        path_items: list[int] = []
        path_nodes: list[int] = []
        max_len = 0
        for item, sequence in enumerate(sequences):
            sequence = tuple(int(t) for t in sequence)
            if not sequence:
                raise ValueError(f"item {item} has an empty token sequence")
            if min(sequence) < 0 or max(sequence) >= self.vocab_size:
                raise ValueError(f"item {item}: tokens {sequence} must lie in [0, {self.vocab_size})")
            max_len = max(max_len, len(sequence))
            node = 0
            for depth in range(1, len(sequence) + 1):
                prefix = sequence[:depth]
                child = node_of.get(prefix)
                if child is None:
                    child = len(node_of)
                    node_of[prefix] = child
                    parents.append(node)
                    tokens.append(prefix[-1])
                node = child
                path_items.append(item)
                path_nodes.append(node)
            if node in item_at:
                raise ValueError(f"items {item_at[node]} and {item} share the token sequence {sequence}")
            item_at[node] = item
        n_nodes = len(node_of)
        parent = np.asarray(parents, np.int64)
        token = np.asarray(tokens, np.int64)
        child = np.arange(1, n_nodes, dtype=np.int64)
        has_children = np.zeros(n_nodes, bool)
        has_children[parent] = True
        inner_items = [i for n, i in item_at.items() if has_children[n]]
        if inner_items:
            raise ValueError(f"item {inner_items[0]}'s tokens are a prefix of another item's; "
                             "end variable-length identifiers with an end token")
        order = np.lexsort((token, parent))
        parent, token, child = parent[order], token[order], child[order]
        self.n_items = len(sequences)
        self.n_nodes = n_nodes
        self.max_length = max_len
        self.edge_key = torch.as_tensor(parent * self.vocab_size + token)
        self.edge_token = torch.as_tensor(token)
        self.edge_child = torch.as_tensor(child)
        counts = np.bincount(parent, minlength=n_nodes)
        self.node_count = torch.as_tensor(counts)
        self.node_start = torch.as_tensor(np.r_[0, np.cumsum(counts)[:-1]])
        node_item = np.full(n_nodes, -1, np.int64)
        for node, item in item_at.items():
            node_item[node] = item
        self.node_item = torch.as_tensor(node_item)
        path_items_np = np.asarray(path_items, np.int64)
        path_nodes_np = np.asarray(path_nodes, np.int64)
        self.items_below = torch.as_tensor(np.bincount(path_nodes_np, minlength=n_nodes))
        # Item i's path nodes are path_nodes[path_start[i] : path_start[i] + path_length[i]].
        lengths = np.bincount(path_items_np, minlength=self.n_items)
        self.path_length = torch.as_tensor(lengths)
        self.path_start = torch.as_tensor(np.r_[0, np.cumsum(lengths)[:-1]])
        self.path_nodes = torch.as_tensor(path_nodes_np)

    def __len__(self) -> int:
        return self.n_items

    def child(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The child of each node along each token, ``-1`` where there is none (or node is -1)."""
        if not len(self.edge_key):
            return torch.full_like(nodes, -1)
        keys = nodes * self.vocab_size + tokens
        pos = torch.searchsorted(self.edge_key, keys).clamp(max=len(self.edge_key) - 1)
        found = (nodes >= 0) & (self.edge_key[pos] == keys)
        return torch.where(found, self.edge_child[pos], -1)

    def items(self, nodes: torch.Tensor) -> torch.Tensor:
        """The item ending at each node, ``-1`` for inner nodes and for ``-1`` (no node)."""
        return torch.where(nodes >= 0, self.node_item[nodes.clamp(min=0)], -1)

    def sequence(self, item: int) -> list[int]:
        """Item ``item``'s tokens, read back from the trie."""
        start, length = int(self.path_start[item]), int(self.path_length[item])
        nodes = self.path_nodes[start:start + length]
        by_child = torch.empty(self.n_nodes, dtype=torch.long)
        by_child[self.edge_child] = self.edge_token
        return by_child[nodes].tolist()

    def excluded_counts(self, exclude: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted keys ``case * n_nodes + node`` and how many excluded items lie below each."""
        lists = [torch.as_tensor(np.asarray(items, np.int64)) for items in exclude]
        sizes = torch.as_tensor([len(items) for items in lists], dtype=torch.long)
        if int(sizes.sum()) == 0:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        items = torch.cat(lists)
        case_of = torch.repeat_interleave(torch.arange(len(lists)), sizes)
        keep = (items >= 0) & (items < self.n_items)
        # Each (case, item) once, however often a list repeats it.
        pairs = torch.unique(case_of[keep] * self.n_items + items[keep])
        case_of, items = pairs // self.n_items, pairs % self.n_items
        lengths = self.path_length[items]
        starts = self.path_start[items]
        entry_case = torch.repeat_interleave(case_of, lengths)
        nodes = self.path_nodes[_ranges(starts, lengths)]
        keys, counts = torch.unique(entry_case * self.n_nodes + nodes, return_counts=True)
        return keys, counts


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(s, s + n)`` for every (s, n), without a Python loop."""
    total = int(lengths.sum())
    offsets = torch.arange(total) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.repeat_interleave(starts, lengths) + offsets


@dataclass
class BeamResult:
    """Per case, the ``beam_size`` best items (``-1``: no item) and their log-probabilities.

    ``invalid[c, b]``: beam b of case c finished on a token sequence that names no item
    (only in unconstrained decoding). A score of ``-inf`` marks a beam that holds no
    hypothesis (fewer candidates than beams); its item is ``-1`` and it is not invalid.
    """

    items: torch.Tensor
    scores: torch.Tensor
    invalid: torch.Tensor

    @property
    def invalid_share(self) -> float:
        """Share of generated identifiers (finite-score beams) that match no item."""
        finite = torch.isfinite(self.scores)
        return float(self.invalid[finite].float().mean()) if bool(finite.any()) else 0.0


def _alive_nodes(trie: TokenTrie, n_cases: int, exclude: Sequence[np.ndarray] | None) -> torch.Tensor | None:
    """``alive[c * n_nodes + node]``: some item below ``node`` is not excluded for case c (None: none excluded)."""
    if exclude is None:
        return None
    keys, counts = trie.excluded_counts(exclude)
    if not len(keys):
        return None
    left = trie.items_below.repeat(n_cases)
    left.index_add_(0, keys, -counts)
    return left > 0


def _trie_candidates(logits: torch.Tensor, scores: torch.Tensor, nodes: torch.Tensor, trie: TokenTrie, width: int,
                     alive: torch.Tensor | None, pad_token: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's allowed continuations: ``(rows, C)`` scores, tokens and trie nodes.

    Only the children of a row's node are candidates (C: the most any row has), so the
    top-k runs over ``width x C`` entries per case instead of ``width x vocab``. A row on
    an item (it has finished) continues with ``pad_token`` alone, at no cost.
    """
    counts = trie.node_count[nodes]
    n_columns = max(int(counts.max()), 1)
    columns = torch.arange(n_columns)
    edges = (trie.node_start[nodes][:, None] + columns).clamp(max=len(trie.edge_token) - 1)
    valid = columns < counts[:, None]
    tokens, children = trie.edge_token[edges], trie.edge_child[edges]
    if alive is not None:
        case = torch.arange(len(nodes)) // width
        valid &= alive[case[:, None] * trie.n_nodes + children]
    # Over the model's whole vocabulary (it may pad it past the trie's tokens), as generate does.
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(1, tokens)
    candidates = torch.where(valid, scores[:, None] + logprobs, -torch.inf)
    done = trie.node_item[nodes] >= 0
    if bool(done.any()):
        candidates[done, 0] = scores[done]
        tokens[done, 0] = pad_token
        children[done, 0] = nodes[done]
    return candidates, tokens, children


def _top(flat: torch.Tensor, take: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``take`` best entries, best first; equal scores go to the lower index.

    ``topk`` leaves the order of equal values to its algorithm, and an exact tie can
    straddle the cut (random-init code tokens can share an output row). The lower flat
    index (the earlier beam, then the smaller token) wins, as in a stable sort, so the
    result does not depend on how the candidates are laid out.
    """
    top, index = flat.topk(take, dim=1)
    last = top[:, -1:]
    tied = flat == last
    if bool((tied.sum(1) > (top == last).sum(1)).any()):  # a tie straddles the cut: keep the lowest indices
        above = (top > last).sum(1, keepdim=True)
        keep = (flat > last) | (tied & (tied.cumsum(1) <= take - above))
        index = keep.nonzero()[:, 1].view(len(flat), take)
    index = index.sort(dim=1).values  # ascending index, then a stable sort by score
    top = flat.gather(1, index)
    top, order = top.sort(dim=1, descending=True, stable=True)
    return top, index.gather(1, order)


def beam_search(
    decoder: Decoder,
    trie: TokenTrie,
    n_cases: int,
    beam_size: int,
    exclude: Sequence[np.ndarray] | None = None,
    constrained: bool = True,
    pad_token: int = 0,
    end_token: int | None = None,
    max_length: int | None = None,
) -> BeamResult:
    """The ``beam_size`` best items of each of ``n_cases`` cases under ``decoder``.

    ``exclude[c]``: items case c must not get (pruned in the trie; constrained only).
    A finished beam (it reached an item, or in unconstrained decoding took ``end_token``
    or ``max_length`` tokens) keeps its score and is fed ``pad_token`` until every beam
    has finished. ``max_length`` defaults to the trie's longest sequence.
    """
    vocab = trie.vocab_size
    max_length = max_length or trie.max_length
    alive = _alive_nodes(trie, n_cases, exclude) if constrained else None
    case_offset = torch.arange(n_cases)[:, None]
    width = 1  # rows per case: one before the first expansion, then beam_size
    scores = torch.zeros(n_cases)
    nodes = torch.zeros(n_cases, dtype=torch.long)
    finished = torch.zeros(n_cases, dtype=torch.bool)
    done_row = torch.full((vocab,), -torch.inf)
    done_row[pad_token] = 0.0
    tokens = parents = None
    for _ in range(max_length):
        rows = n_cases * width
        logits = decoder.step(tokens, parents)
        if logits.shape[0] != rows or logits.shape[1] < vocab:
            raise ValueError(f"decoder returned logits of shape {tuple(logits.shape)}; expected ({rows}, >= {vocab})")
        if constrained:  # every beam stands on a trie node; only its children compete
            candidates, next_tokens, next_nodes = _trie_candidates(logits, scores, nodes, trie, width, alive,
                                                                   pad_token)
        else:  # every token competes; a finished beam continues only with the pad token, at no cost
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, :vocab]
            if bool(finished.any()):
                logprobs = torch.where(finished[:, None], done_row, logprobs)
            candidates = scores[:, None] + logprobs
        n_columns = candidates.shape[1]
        take = min(beam_size, width * n_columns)
        top, index = _top(candidates.reshape(n_cases, width * n_columns), take)
        if take < beam_size:  # fewer candidates than beams: the rest hold no hypothesis
            top = torch.cat([top, torch.full((n_cases, beam_size - take), -torch.inf)], dim=1)
            index = torch.cat([index, index[:, :1].expand(n_cases, beam_size - take)], dim=1)
        parents = (index // n_columns + case_offset * width).reshape(-1)
        column = (index % n_columns).reshape(-1)
        scores = top.reshape(-1)
        width = beam_size
        if constrained:  # an identifier ends where it names an item
            tokens, nodes = next_tokens[parents, column], next_nodes[parents, column]
            finished = trie.items(nodes) >= 0
        else:
            was_finished = finished[parents]
            tokens = column
            nodes = torch.where(was_finished, nodes[parents], trie.child(nodes[parents], tokens))
            if end_token is None:
                finished = was_finished | (trie.items(nodes) >= 0)
            else:  # free-running text ends at the end token, item or not
                finished = was_finished | (tokens == end_token)
        if bool((finished | ~torch.isfinite(scores)).all()):
            break
    items = trie.items(nodes)
    live = torch.isfinite(scores)
    invalid = live & (items < 0)
    items = torch.where(live, items, -1)
    return BeamResult(items.reshape(n_cases, beam_size), scores.reshape(n_cases, beam_size),
                      invalid.reshape(n_cases, beam_size))
