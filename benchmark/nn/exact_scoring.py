"""Exact full-catalogue scoring for token-sequence recommenders.

Beam search (:mod:`benchmark.nn.beam_search`) keeps the ``beam_size`` best prefixes at each
step, so an item whose first tokens score poorly can be lost although its whole identifier
would rank high. :func:`exact_scores` computes, for every case and **every** item, the
summed log-probability of the item's whole token sequence (every code; the end token of a
text identifier) given the case's input; :func:`top_items` ranks them.

The computation walks the :class:`~benchmark.nn.beam_search.TokenTrie` level by level
through the same :class:`~benchmark.nn.beam_search.Decoder` the beam search drives: at
depth ``d`` one row per case and inner trie node (a prefix shared by several items is
decoded once), so a catalogue costs one decoder step per distinct proper prefix instead of
one per item and token, and the encoder (or the prompt) runs once per case. Every row of a
case is a "beam" of that case, so the decoders' per-case sharing (T5's cross-attention keys,
the prompt's cache) holds unchanged. Log-probabilities are taken over the model's whole
vocabulary, as the beam search takes them, so with a beam as wide as the catalogue both give
the same lists (``tests/test_exact_scoring.py``).

The rows of the widest level times the cases of a pass bound the memory; recommenders
split their cases into passes with :func:`cases_per_pass`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchmark.nn.beam_search import Decoder, TokenTrie
from benchmark.params import Param

SCORINGS = ("beam", "exact")
# Added after rows were stored: at "beam" a run keeps its key.
SCORING_PARAM = Param(
    "scoring", str, "beam", "beam (constrained beam search with beam_size beams) or exact (every item's whole "
    "identifier log-probability, computed for the full catalogue, ranked in full)", unkeyed_default=True,
    options=SCORINGS)
# Floats one pass may hold in its rows' logits and caches (about 256 MB).
PASS_FLOATS = 1 << 26


def level_widths(trie: TokenTrie) -> list[int]:
    """Rows per case of each decoder step of :func:`exact_scores`: 1 (the root), then the inner
    nodes of depth 1, 2, ..."""
    widths, nodes = [1], torch.zeros(1, dtype=torch.long)
    while True:
        children = _children(trie, nodes)[1]
        nodes = children[trie.node_item[children] < 0]
        if not len(nodes):
            return widths
        widths.append(len(nodes))


def row_floats(config: Any, positions: int, attended: int = 0) -> int:
    """Floats one decoding row holds: its logits over the vocabulary and its key/value cache
    over ``positions`` tokens, from a ``transformers`` config (T5 or a causal LM), and with
    ``attended`` shared keys (a case's prompt, not copied per row) three score rows per head."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(config, "model_type", "") == "t5":
        layers, heads, head_dim = config.num_decoder_layers, config.num_heads, config.d_kv
    else:
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        layers = config.num_hidden_layers
    return config.vocab_size + positions * layers * 2 * heads * head_dim + 3 * attended * config.num_attention_heads


def cases_per_pass(trie: TokenTrie, floats_per_row: int, limit: int, budget: int = PASS_FLOATS) -> int:
    """Cases to score in one pass so that the widest level's rows hold about ``budget``
    floats (``floats_per_row``: a row's logits and cache), at least 1 and at most ``limit``."""
    widest = max(level_widths(trie))
    return max(1, min(limit, budget // max(1, widest * floats_per_row)))


def _children(trie: TokenTrie, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every edge below ``nodes`` (in node order): the index of its parent in ``nodes``,
    its child node and its token."""
    counts = trie.node_count[nodes]
    total = int(counts.sum())
    parent_index = torch.repeat_interleave(torch.arange(len(nodes)), counts)
    offsets = torch.arange(total) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    edges = torch.repeat_interleave(trie.node_start[nodes], counts) + offsets
    return parent_index, trie.edge_child[edges], trie.edge_token[edges]


def exact_scores(decoder: Decoder, trie: TokenTrie, n_cases: int) -> torch.Tensor:
    """``(n_cases, n_items)``: every item's summed token log-probability under ``decoder``.

    ``decoder`` is fresh (no step taken) and serves ``n_cases`` cases; its first step gives
    one row per case, each later step one row per case and inner trie node of the next depth,
    case-major, each continuing its parent node's row.
    """
    scores = torch.full((n_cases, trie.n_items), -torch.inf)
    nodes = torch.zeros(1, dtype=torch.long)  # this step's rows per case: the root
    prefix = torch.zeros(n_cases, 1)  # log-probability of each row's prefix
    case = torch.arange(n_cases)[:, None]
    logits = decoder.step(None, None)
    while True:
        width = len(nodes)
        if logits.shape[0] != n_cases * width or logits.shape[1] < trie.vocab_size:
            raise ValueError(f"decoder returned logits of shape {tuple(logits.shape)}; expected "
                             f"({n_cases * width}, >= {trie.vocab_size})")
        logits = logits.float()
        normaliser = torch.logsumexp(logits, dim=-1).view(n_cases, width)
        parent_index, children, tokens = _children(trie, nodes)
        rows = case * width + parent_index  # (cases, edges): the row each edge continues
        child = prefix[:, parent_index] + logits[rows, tokens] - normaliser[:, parent_index]
        items = trie.node_item[children]
        leaf = items >= 0  # a node naming an item has no children (TokenTrie refuses prefixes)
        scores[:, items[leaf]] = child[:, leaf]
        inner = ~leaf
        if not bool(inner.any()):
            return scores
        nodes, prefix = children[inner], child[:, inner]
        logits = decoder.step(tokens[inner].repeat(n_cases), rows[:, inner].reshape(-1))


def top_items(scores: torch.Tensor, k: int, exclude: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Each case's ``k`` best items by ``scores`` (best first, equal scores to the lower item
    index), ``exclude[c]`` left out as beam search prunes them; ``-1`` pads short lists."""
    scores = scores.clone()
    if exclude is not None:
        for row, items in enumerate(exclude):
            items = torch.as_tensor(np.asarray(items, np.int64))
            items = items[(items >= 0) & (items < scores.shape[1])]
            scores[row, items] = -torch.inf
    order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    best = order.numpy().astype(np.int64)
    best[~torch.isfinite(scores.gather(1, order)).numpy()] = -1
    if best.shape[1] < k:
        best = np.concatenate([best, np.full((len(best), k - best.shape[1]), -1, np.int64)], axis=1)
    return best
