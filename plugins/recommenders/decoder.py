"""``decoder``: decoder-only generative retrieval, TIGER's decoder-only variant (GRID).

TIGER (Rajput et al., NeurIPS'23) encodes the history's semantic ids and decodes the next
item's. GRID (Ju et al., "Generative Recommendation with Semantic IDs: A Practitioner's
Handbook", 2025) also trains the same task with one causal transformer. Here the
user's items are ONE causal token sequence,

    [user token] codes(item 1) codes(item 2) ... codes(item n)

(one token per (level, code), as in seq2seq; a hashed user token as TIGER's, or a start
token with ``user_tokens=0``), and training is next-token prediction of every item's codes
at every item boundary: one forward pass over a window of the user's sequence trains every
target in it, the sample efficiency SASRec's window objective gives ID models, where
seq2seq encodes one history per target. Each epoch cuts every user's targets into windows
of ``max_history`` supervised items (plus the item before them as context;
:func:`benchmark.nn.sequences.training_windows`, a new seeded shift each epoch), so every
target is trained once per epoch, or with ``windows_per_user`` draws that many full windows
per user (the most recent among them); the first item of a window is context only, nothing
precedes it. The loss is the cross-entropy of the supervised code tokens over the whole
vocabulary (the output layer runs on those positions only).

Ranking: the prompt is the user token and the codes of the last ``max_history`` items;
constrained beam search over the trie of every item's codes
(:mod:`benchmark.nn.beam_search` with :func:`benchmark.nn.decoders.prompt_decoder`), the
user's seen items pruned in the trie under the default protocol; or ``scoring=exact``: every
item ranked by its codes' log-probability (:mod:`benchmark.nn.exact_scoring`).

The backbone is the harness's random-init decoder (:func:`benchmark.nn.causal_lm.causal_lm`,
Qwen2 architecture: rotary positions, RMSNorm, gated MLP; ``dropout`` is its attention
dropout, the architecture has no other). Profiles: ``paper``: TIGER's sizes with its 4+4
layers as one stack of 8; ``tiny`` 2 layers at d_model 128 and each user's most recent
window once per epoch; ``cpu`` (the boards): 4 layers (the depth of seq2seq's 2+2) at seq2seq's ``cpu``
width (d_model 64, 4 heads of 16, MLP 256), every target once per epoch, and seq2seq's
``cpu`` schedule and stopping (constant 3e-3 after a warm-up, patience 10, every validation
case).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import CaseBatch, FitContext, ItemIdentifiers, Recommender, RecommenderSpec, TrainingData
from benchmark.errors import PluginError
from benchmark.nn.beam_search import TokenTrie, beam_search
from benchmark.nn.causal_lm import base_model, causal_lm, describe, hidden_states, left_padded
from benchmark.nn.decoders import prompt_decoder, shared_row_floats
from benchmark.nn.engine import ENGINE_PARAMS, engine_param, pick_device, train
from benchmark.nn.exact_scoring import (
    SCORING_PARAM,
    cases_per_pass,
    exact_scores,
    top_items,
)
from benchmark.nn.sequences import TRANSFORMER_PARAMS, batches, training_windows, window_count
from benchmark.params import Param

OWNER = "recommender 'decoder'"
PAD, START = 0, 1

PARAMS = (
    Param("layers", int, 8, "decoder layers (random init; paper: TIGER's 4+4 as one stack)",
          profiles={"tiny": 2, "cpu": 4}, minimum=1, low=2, high=8),
    *TRANSFORMER_PARAMS,
    Param("user_tokens", int, 2000, "hashed user-id tokens opening each sequence (TIGER: 2000); 0: a start "
          "token", minimum=0),
    *(engine_param("batch_size", default=64, help="training windows per optimiser step (each up to "
                   "max_history targets)") if p.name == "batch_size" else p for p in ENGINE_PARAMS),
    Param("windows_per_user", int, 0, "training windows per user and epoch (0: every target once per epoch, "
          "in windows cut afresh each epoch); n: the most recent full window and n-1 others drawn afresh",
          profiles={"tiny": 1, "cpu": 0}, minimum=0),
    Param("valid_cases", int, 0, "validation cases used for early stopping (0: all); a fixed seeded "
          "sample, the same for every method", profiles={"tiny": 500, "cpu": 0}, minimum=0),
    Param("beam_size", int, 20, "beams of the ranking beam search (at least the ranked list's 20 items)",
          minimum=20),
    Param("decode_batch", int, 32, "users per beam-search batch", minimum=1),
    SCORING_PARAM,
)


class DecoderRecommender(Recommender):
    accepts = frozenset({"codes"})

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    # ---- building

    def _build(self, identifiers: ItemIdentifiers) -> None:
        if identifiers.kind != "codes":
            raise PluginError(f"{OWNER} writes code identifiers; got {identifiers.kind!r} identifiers")
        p = self.params
        self.user_offset = START + 1
        base = self.user_offset + p["user_tokens"]
        sizes = list(identifiers.vocab_sizes)
        offsets = np.r_[0, np.cumsum(sizes)[:-1]] + base
        self.vocab_size = base + int(sum(sizes))
        self.levels = identifiers.codes.shape[1]
        self.code_table = torch.as_tensor(identifiers.codes.astype(np.int64) + offsets[None, :])
        self.model = causal_lm(self._backbone_params(), self.vocab_size, PAD, START, OWNER).to(self.device)
        self.trie = TokenTrie(self.code_table.tolist(), self.vocab_size)

    def _backbone_params(self) -> dict[str, Any]:
        return {**self.params, "model_path": ""}  # random init only: no pretrained vocabulary knows codes

    def backbone(self) -> str:
        return describe(self._backbone_params())

    def _heads(self, users: np.ndarray) -> torch.Tensor:
        """The token opening each user's sequence: a hashed user token, or the start token."""
        if not self.params["user_tokens"]:
            return torch.full((len(users),), START, dtype=torch.long)
        return torch.as_tensor(self.user_offset + np.asarray(users, np.int64) % self.params["user_tokens"])

    # ---- training

    def _batch(self, data: TrainingData, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids, mask, labels)`` of windows ``rows`` (user, end, supervised):
        ``labels[r, t]`` is the token position ``t + 1`` holds where it belongs to a supervised
        item, else -100, so position t's output predicts it."""
        span = data.max_history
        users, ends, supervised = rows[:, 0], rows[:, 1], rows[:, 2]
        items = np.full((len(rows), span + 1), -1, np.int64)
        for row, (user, end) in enumerate(zip(users, ends)):
            window = data.train[user][max(0, end - span):end + 1]
            items[row, : len(window)] = window
        lengths = (items >= 0).sum(1)
        items = torch.as_tensor(items)
        codes = self.code_table[items.clamp(min=0)]  # (rows, span + 1, levels)
        codes[items < 0] = PAD
        ids = torch.cat([self._heads(users)[:, None], codes.reshape(len(rows), -1)], dim=1)
        position = torch.arange(span + 1)[None, :]
        lengths, supervised = torch.as_tensor(lengths)[:, None], torch.as_tensor(supervised)[:, None]
        target_item = (position >= lengths - supervised) & (position < lengths)
        target = target_item.repeat_interleave(self.levels, dim=1)
        labels = torch.where(target, ids[:, 1:], -100)
        mask = torch.cat([torch.ones(len(rows), 1, dtype=torch.long),
                          (items >= 0).long().repeat_interleave(self.levels, dim=1)], dim=1)
        width = int(mask.sum(1).max())
        return ids[:, :width], mask[:, :width], labels[:, : width - 1]

    def _loss(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = hidden_states(self.model, ids.to(self.device), mask.to(self.device))[:, :-1]
        labels = labels.to(self.device)
        targets = labels != -100
        logits = base_model(self.model).get_output_embeddings()(hidden[targets]).float()
        return torch.nn.functional.cross_entropy(logits, labels[targets])

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        p = self.params
        self.device = pick_device(p["device"], context.device, OWNER)
        torch.manual_seed(self.seed)
        self._build(identifiers)
        span = data.max_history

        def epoch_batches(epoch: int):
            rows = training_windows(data.train, span, p["windows_per_user"], self.seed, epoch, OWNER)
            return batches(rows, p["batch_size"])

        self.training = train(self.model, p, context, "train decoder",
                              window_count(data.train, span, p["windows_per_user"]), epoch_batches,
                              lambda rows: self._loss(*self._batch(data, rows)),
                              lambda: context.validate(self, limit=p["valid_cases"] or None))

    # ---- ranking

    def _prompts(self, batch: CaseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompts: the user's head token, then the codes of the history."""
        heads = self._heads(batch.users).tolist()
        rows = [[head] + self.code_table[torch.as_tensor(np.asarray(history, np.int64))].reshape(-1).tolist()
                for head, history in zip(heads, batch.histories)]
        return left_padded(rows, PAD)

    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
        if self.params["scoring"] == "exact":
            return top_items(self.exact_scores(batch), k, batch.exclude)
        p = self.params
        beam = max(k, p["beam_size"])
        out = np.full((len(batch), k), -1, np.int64)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(batch), p["decode_batch"]):
                part = slice(start, start + p["decode_batch"])
                ids, mask = self._prompts(_slice(batch, part))
                decoder = prompt_decoder(self.model, ids.to(self.device), mask.to(self.device))
                exclude = batch.exclude[part] if batch.exclude is not None else None
                result = beam_search(decoder, self.trie, len(ids), beam, exclude=exclude, pad_token=PAD)
                out[part] = result.items[:, :k].numpy()
        return out

    def exact_scores(self, batch: CaseBatch) -> torch.Tensor:
        """``(len(batch), n_items)``: each item's codes' log-probability after the case's prompt."""
        prompt = 1 + max((len(h) for h in batch.histories), default=0) * self.levels
        floats = shared_row_floats(self.model, prompt, self.trie.max_length)
        step = cases_per_pass(self.trie, floats, self.params["decode_batch"])
        parts = []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(batch), step):
                ids, mask = self._prompts(_slice(batch, slice(start, start + step)))
                parts.append(exact_scores(prompt_decoder(self.model, ids.to(self.device), mask.to(self.device)),
                                          self.trie, len(ids)))
        return torch.cat(parts) if parts else torch.zeros(0, self.trie.n_items)


def _slice(batch: CaseBatch, part: slice) -> CaseBatch:
    return CaseBatch(users=batch.users[part], histories=batch.histories[part], seen=batch.seen[part],
                     exclude=batch.exclude[part] if batch.exclude is not None else None)


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="decoder", version="1", family="seq2seq",
            factory=lambda params, seed: DecoderRecommender(params, seed),
            accepts=DecoderRecommender.accepts,
            description="decoder-only transformer over the history's codes as one sequence, trained on every "
            "item boundary; constrained beam search or exact scoring",
            params=PARAMS,
        )
    )
