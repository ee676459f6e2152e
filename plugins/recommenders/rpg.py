"""``rpg``: long semantic IDs generated in parallel (RPG, Hou et al., KDD'25).

"Generating Long Semantic IDs in Parallel for Recommendation". Each item is a long code
of M unordered digits (the ``opq`` tokenizer: optimised product quantisation of its text
embedding, e.g. 32 digits of 256 codes); here any ``codes`` identifiers work.

- **Item embedding**: the mean of its digits' embeddings (one embedding table per digit).
- **Backbone**: a decoder-only (causal) transformer reads the history's item embeddings
  with learned positions.
- **Multi-token prediction**: at every position, one head per digit predicts that digit
  of the next item, all digits in parallel: the head projects the hidden state and scores
  it against the digit's embedding table (tied). The loss is the cross-entropy summed over
  the digits, averaged over every position of every training window: one forward pass
  trains every next item of a user's sequence, as SASRec's objective does.
- **Ranking**: an item's score is the sum of its digits' log-probabilities at the last
  position. On a catalogue of ml-100k's size every item is scored exactly (one gather per
  digit, ``scoring=exact``, the default). ``scoring=graph`` is the paper's
  graph-constrained decoding for catalogues too large to score (:func:`graph_decode`):
  over a graph linking each item to its ``graph_edges`` most similar items (the mean over
  digits of the cosine of their code embeddings), a beam of ``graph_beams`` items starts
  at random items and, ``graph_steps`` times, moves to the best-scored neighbours of the
  beam; only the final beam is ranked (the lists hold the beam alone). It approximates
  the exact ranking, which it equals on a complete graph (a test); the ``beam_vs_exact``
  evaluator measures what it loses.

Digits enter only through per-digit tables and heads and a mean, so the model does not
depend on the order of the digits (a test permutes them). Training windows: each user's
training sequence cut, from its end, into windows of ``max_history`` + 1 items (the
model input cap), every window every epoch, shuffled by seed and epoch; ``windows=sliding``
trains on RPG's official rows instead (:func:`sliding_windows`: every target after a
sequence's first window with its full history; on ml-100k 15x the rows of ``disjoint``,
and about twice the time an epoch, as a sliding row scores its last position only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import CaseBatch, FitContext, ItemIdentifiers, Recommender, RecommenderSpec, TrainingData
from benchmark.errors import PluginError
from benchmark.nn.engine import ENGINE_PARAMS, pick_device, train
from benchmark.nn.sequences import TRANSFORMER_PARAMS, batches, right_aligned
from benchmark.params import Param

OWNER = "recommender 'rpg'"

WINDOWS = ("disjoint", "sliding")
SCORINGS = ("exact", "graph")
DIGIT_LOGITS = ("dot", "cosine")
ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU}

PARAMS = (
    Param("layers", int, 2, "decoder layers", minimum=1, low=1, high=4),
    *TRANSFORMER_PARAMS,
    *ENGINE_PARAMS,
    Param("valid_cases", int, 0, "validation cases used for early stopping (0: all); a fixed seeded "
          "sample, the same for every method", profiles={"tiny": 500, "cpu": 0}, minimum=0),
    # Added after the boards' rows, at defaults that reproduce them (out of the run key there).
    Param("digit_logits", str, "dot", "dot (a digit's logits: the projected state's dot products with its code "
          "embeddings) or cosine (their cosine similarity over temperature, as RPG's official code and "
          "Cornac's RPG)", unkeyed_default=True, options=DIGIT_LOGITS),
    Param("temperature", float, 0.07, "temperature of the cosine digit logits (digit_logits=cosine)",
          minimum=1e-4, unkeyed_default=True),
    Param("activation", str, "relu", "the MLP's activation: relu, or gelu (RPG's official code)",
          unkeyed_default=True, options=tuple(ACTIVATIONS)),
    Param("windows", str, "disjoint", "training rows: disjoint (each sequence cut from its end into windows that "
          "share one item, every position supervised: each target once, with the context its place in the window "
          "gives) or sliding (RPG's official code and Cornac's RPG: the first window supervises every position, "
          "then a window ending at each later target supervises that target only, with the full history)",
          unkeyed_default=True, options=WINDOWS),
    Param("scoring", str, "exact", "exact (every item's summed digit log-probabilities) or graph (RPG's "
          "graph-constrained decoding: only the final beam is ranked)", unkeyed_default=True, options=SCORINGS),
    Param("graph_edges", int, 50, "scoring=graph: neighbours of each item in the item graph (RPG: 50-200)",
          minimum=1, unkeyed_default=True),
    Param("graph_beams", int, 50, "scoring=graph: items kept in the beam, so ranked (at least the 20 a list "
          "needs)", minimum=20, unkeyed_default=True),
    Param("graph_steps", int, 3, "scoring=graph: moves of the beam to its neighbours (RPG: 3-5)", minimum=1,
          unkeyed_default=True),
)


def training_windows(train: list[np.ndarray], length: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Every user's training sequence cut from its end into windows of at most ``length``
    items that overlap by one, so each transition (item t -> item t+1) lies in exactly one
    window; windows of one item (nothing to predict) are dropped. Shuffled by seed and epoch."""
    windows = []
    for sequence in train:
        end = len(sequence)
        while end >= 2:
            start = max(0, end - length)
            windows.append(np.asarray(sequence[start:end], np.int64))
            end = start + 1
            if start == 0:
                break
    order = np.random.default_rng([seed, epoch]).permutation(len(windows)) if windows else []
    return [windows[i] for i in order]


def sliding_windows(train: list[np.ndarray], length: int, seed: int, epoch: int) -> list[tuple[np.ndarray, bool]]:
    """RPG's official training rows: per sequence, its first ``length`` items as one window
    with every position supervised, then for each later target the window of ``length``
    items ending at it, supervising that target only (``True``: the last position only).
    Each target is supervised once, every one after the first window with a full history.
    Sequences of one item are dropped. Shuffled by seed and epoch."""
    rows = []
    for sequence in train:
        if len(sequence) < 2:
            continue
        rows.append((np.asarray(sequence[:length], np.int64), False))
        rows += [(np.asarray(sequence[end - length:end], np.int64), True)
                 for end in range(length + 1, len(sequence) + 1)]
    order = np.random.default_rng([seed, epoch]).permutation(len(rows)) if rows else []
    return [rows[i] for i in order]


class Block(torch.nn.Module):
    """Pre-norm causal self-attention (``heads`` x ``head_dim``) and a ReLU MLP."""

    def __init__(self, width: int, heads: int, head_dim: int, ff: int, dropout: float, activation: str = "relu"):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * heads * head_dim)
        self.out = torch.nn.Linear(heads * head_dim, width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, ff), ACTIVATIONS[activation](),
                                       torch.nn.Linear(ff, width))
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(n, length, -1)))
        return x + self.drop(self.mlp(self.norm2(x)))


class RPGModel(torch.nn.Module):
    """Digit tables, positions, causal blocks and one head per digit.

    ``codes`` (n_items, M) and ``vocab_sizes`` (M,): digit m of item i is ``codes[i, m]``
    in ``0..vocab_sizes[m]-1``.
    """

    def __init__(self, codes: np.ndarray, vocab_sizes: tuple[int, ...], params: dict[str, Any], length: int):
        super().__init__()
        width = params["d_model"]
        self.digits = len(vocab_sizes)
        self.vocab = max(vocab_sizes)
        self.register_buffer("codes", torch.as_tensor(codes, dtype=torch.long))
        # Digit m's codes live in row block m of one padded table; padded rows are never used.
        valid = torch.zeros(self.digits, self.vocab, dtype=torch.bool)
        for m, size in enumerate(vocab_sizes):
            valid[m, :size] = True
        self.register_buffer("valid_codes", valid)
        self.tables = torch.nn.Parameter(torch.randn(self.digits, self.vocab, width) * width ** -0.5)
        self.heads = torch.nn.Parameter(torch.eye(width).repeat(self.digits, 1, 1)
                                        + 0.02 * torch.randn(self.digits, width, width))
        # Positions at the digit embeddings' scale, so they do not drown the items' content.
        self.positions = torch.nn.Embedding(length, width)
        torch.nn.init.normal_(self.positions.weight, std=width ** -0.5)
        self.blocks = torch.nn.ModuleList(
            Block(width, params["heads"], params["head_dim"], params["d_ff"], params["dropout"], params["activation"])
            for _ in range(params["layers"]))
        self.cosine = params["digit_logits"] == "cosine"
        self.temperature = params["temperature"]
        self.norm = torch.nn.LayerNorm(width)
        self.drop = torch.nn.Dropout(params["dropout"])

    def item_embeddings(self) -> torch.Tensor:
        """(n_items, width): the mean of each item's digit embeddings."""
        digit = torch.arange(self.digits, device=self.codes.device)
        return self.tables[digit[None, :], self.codes].mean(1)

    def hidden(self, index: torch.Tensor) -> torch.Tensor:
        """(B, L, width) states after each item of left-padded histories ``index`` (-1: pad)."""
        n, length = index.shape
        present = index >= 0
        x = self.item_embeddings()[index.clamp(min=0)] * present[..., None]
        x = self.drop(x + self.positions.weight[-length:][None])
        position = torch.arange(length, device=index.device)
        causal = position[None, :] <= position[:, None]
        # A query sees earlier real items and itself (so a padded row is never empty).
        mask = (causal[None] & present[:, None, :]) | torch.eye(length, dtype=torch.bool, device=index.device)[None]
        for block in self.blocks:
            x = block(x, mask[:, None])
        return self.norm(x)

    def digit_log_probs(self, states: torch.Tensor) -> torch.Tensor:
        """(..., M, vocab) log-probabilities of every digit of the next item, in parallel."""
        projected = torch.einsum("...d,mde->...me", states, self.heads)
        if self.cosine:  # cosine similarity over the temperature: logits bounded by 1 / temperature
            projected = torch.nn.functional.normalize(projected, dim=-1)
            tables = torch.nn.functional.normalize(self.tables, dim=-1)
            logits = torch.einsum("...me,mve->...mv", projected, tables) / self.temperature
        else:
            logits = torch.einsum("...me,mve->...mv", projected, self.tables)
        logits = logits.masked_fill(~self.valid_codes, float("-inf"))
        return torch.log_softmax(logits.float(), dim=-1)

    def item_scores(self, states: torch.Tensor) -> torch.Tensor:
        """(B, n_items): each item's summed digit log-probabilities given states (B, width)."""
        log_probs = self.digit_log_probs(states)  # (B, M, vocab)
        digit = torch.arange(self.digits, device=states.device)
        return log_probs[:, digit[None, :], self.codes].sum(-1)  # (B, n_items)

    def loss(self, index: torch.Tensor, last_only: torch.Tensor | None = None) -> torch.Tensor:
        """Next-item loss of windows ``index`` (B, L): at every position with a real item
        before a real next item (only the last one in rows where ``last_only`` (B,) is
        true), the cross-entropy of each next-item digit, summed over digits, averaged over
        the supervised positions."""
        states = self.hidden(index[:, :-1])
        targets = index[:, 1:]
        supervised = (targets >= 0) & (index[:, :-1] >= 0)
        if last_only is not None:
            last = torch.zeros_like(supervised)
            last[:, -1] = True
            supervised &= ~last_only[:, None] | last
        log_probs = self.digit_log_probs(states[supervised])  # (S, M, vocab)
        target_codes = self.codes[targets[supervised]]  # (S, M)
        picked = log_probs.gather(-1, target_codes[..., None]).squeeze(-1)
        return -picked.sum(1).mean()


@torch.no_grad()
def item_graph(model: RPGModel, edges: int, chunk: int = 1024) -> torch.Tensor:
    """(n_items, min(edges, n_items)): each item's most similar items, most similar first.

    The similarity of two items is the mean over digits of the cosine similarity of their
    digit codes' embeddings, rescaled to [0, 1] (RPG's item graph); an item is usually its
    own first neighbour. Built ``chunk`` items at a time, so memory grows with the catalogue,
    not its square.
    """
    tables = torch.nn.functional.normalize(model.tables.float(), dim=-1)  # (M, V, width)
    code_similarity = 0.5 * (torch.bmm(tables, tables.transpose(1, 2)) + 1.0)  # (M, V, V)
    codes = model.codes
    n, k = len(codes), min(edges, len(codes))
    graph = torch.empty(n, k, dtype=torch.long, device=codes.device)
    for start in range(0, n, chunk):
        block = codes[start:start + chunk]
        similarity = sum(code_similarity[m][block[:, m]][:, codes[:, m]] for m in range(model.digits))
        graph[start:start + chunk] = similarity.topk(k, dim=1).indices
    return graph


def graph_decode(log_probs: torch.Tensor, codes: torch.Tensor, graph: torch.Tensor, start: torch.Tensor,
                 beams: int, steps: int, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RPG's graph-constrained decoding for a batch: the final beams and their scores.

    ``log_probs`` (B, M, V): each case's digit log-probabilities; ``codes`` (n_items, M);
    ``graph`` (n_items, k) from :func:`item_graph`; ``start`` (B, S): the items the beams
    start from; ``exclude`` (B, n_items) bool: items never kept (the seen items). Each of
    ``steps`` moves scores every neighbour of the beam once (an item's summed digit
    log-probabilities, as exact scoring) and keeps the ``beams`` best. Returns (B, beams)
    items and scores, best first; a slot with no item left to fill it scores ``-inf``.
    """
    rows = torch.arange(len(log_probs), device=log_probs.device)[:, None, None]
    digit = torch.arange(codes.shape[1], device=log_probs.device)[None, None, :]
    beam = start
    scores = torch.empty(0)
    for _ in range(steps):
        candidates = graph[beam].flatten(1).sort(dim=1).values  # (B, beam x k), repeats adjacent
        scores = log_probs[rows, digit, codes[candidates]].sum(-1)
        repeated = torch.zeros_like(candidates, dtype=torch.bool)
        repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        if exclude is not None:
            repeated |= exclude.gather(1, candidates)
        scores = scores.masked_fill(repeated, float("-inf"))
        top = scores.topk(min(beams, candidates.shape[1]), dim=1)
        beam, scores = candidates.gather(1, top.indices), top.values
    return beam, scores


class RPGRecommender(Recommender):
    accepts = frozenset({"codes"})

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def backbone(self) -> str:
        p = self.params
        return f"RPG decoder {p['layers']}L d{p['d_model']} {p['heads']}x{p['head_dim']}, {self.digits} digits"

    def _build(self, identifiers: ItemIdentifiers, data: TrainingData) -> None:
        """The model for these digits and history length, on ``self.device``."""
        self.length = data.max_history
        self.digits = len(identifiers.vocab_sizes)
        self.model = RPGModel(identifiers.codes, tuple(identifiers.vocab_sizes), self.params,
                              self.length + 1).to(self.device)

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        if identifiers.kind != "codes" or identifiers.codes is None:
            raise PluginError(f"{OWNER} reads code identifiers (e.g. the 'opq' tokenizer's digits); got "
                              f"{identifiers.kind!r}")
        p = self.params
        self.device = pick_device(p["device"], context.device, OWNER)
        torch.manual_seed(self.seed)
        self._build(identifiers, data)
        def rows(epoch: int) -> list[tuple[np.ndarray, bool]]:
            if p["windows"] == "sliding":
                return sliding_windows(data.train, self.length + 1, self.seed, epoch)
            return [(w, False) for w in training_windows(data.train, self.length + 1, self.seed, epoch)]

        count = len(rows(0))
        if not count:
            raise PluginError(f"{OWNER}: no user has two training items to learn from")

        def epoch_batches(epoch: int):
            return batches(rows(epoch), p["batch_size"])

        def loss_of(batch: list[tuple[np.ndarray, bool]]) -> torch.Tensor:
            index = right_aligned([w for w, _ in batch], self.length + 1).to(self.device)
            return self.model.loss(index, torch.as_tensor([flag for _, flag in batch], device=self.device))

        self.training = train(self.model, p, context, "train rpg", count, epoch_batches, loss_of,
                              lambda: context.validate(self, limit=p["valid_cases"] or None))

    @torch.no_grad()
    def _states(self, batch: CaseBatch) -> torch.Tensor:
        """(B, width): the state after each case's history, the model in eval mode."""
        self.model.eval()
        index = right_aligned([h[-self.length:] for h in batch.histories], self.length).to(self.device)
        return self.model.hidden(index)[:, -1]

    def score(self, batch: CaseBatch) -> np.ndarray | None:
        """Every item's summed digit log-probabilities; ``None`` under ``scoring=graph``, whose
        lists come from :meth:`recommend`."""
        if self.params["scoring"] == "graph":
            return None
        with torch.no_grad():
            return self.model.item_scores(self._states(batch)).cpu().numpy()

    @torch.no_grad()
    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
        """The final beam of RPG's graph-constrained decoding, best first (``-1`` past the beam
        or where no item was left to fill a slot)."""
        p, model = self.params, self.model
        states = self._states(batch)
        n_items = len(model.codes)
        # The graph follows the weights: built again whenever training has changed them.
        version = (model.tables._version, model.tables.data_ptr())
        if getattr(self, "_graph_version", None) != version:
            self._graph, self._graph_version = item_graph(model, p["graph_edges"]), version
        # Each case's random start depends on the seed and its user only, not on its batch.
        start = torch.as_tensor(np.stack([
            np.random.default_rng([self.seed, int(user)]).choice(n_items, min(p["graph_beams"], n_items),
                                                                   replace=False)
            for user in batch.users]), device=self.device)
        exclude = None
        if batch.exclude is not None:
            exclude = torch.zeros(len(batch), n_items, dtype=torch.bool, device=self.device)
            for row, items in enumerate(batch.exclude):
                exclude[row, torch.as_tensor(items, dtype=torch.long)] = True
        beam, scores = graph_decode(model.digit_log_probs(states), model.codes, self._graph, start,
                                    p["graph_beams"], p["graph_steps"], exclude)
        lists = beam.masked_fill(torch.isinf(scores), -1)[:, :k].cpu().numpy()
        return np.pad(lists, ((0, 0), (0, k - lists.shape[1])), constant_values=-1)


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="rpg", version="1", family="RPG",
            factory=lambda params, seed: RPGRecommender(params, seed),
            accepts=RPGRecommender.accepts,
            description="RPG: decoder-only transformer over pooled digit embeddings, every digit of the next "
            "item predicted in parallel; items scored exactly by summed digit log-probabilities (or by RPG's "
            "graph-constrained decoding, scoring=graph)",
            params=PARAMS,
        )
    )
