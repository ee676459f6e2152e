"""``bigrec``: a causal LM writes the next item's title, then grounds it to real items (BIGRec).

BIGRec (Bao et al., "A Bi-Step Grounding Paradigm for Large Language Models in
Recommendation Systems", 2023), on the LLM family's backbones and training loop:

1. *Generation*: the model is fine-tuned (LoRA for a pretrained ``model_path``; a
   random-init decoder in ``tiny``) to write the next item's title after an instruction
   prompt that lists the titles of the user's last ``title_history`` items; the loss is
   the cross-entropy of the response (title + end token) only. At ranking time it writes
   one title per case with ``num_beams`` beam search (``transformers``' ``generate``).
2. *Grounding*: the generated text and every catalog title (the ``tid`` tokenizer's
   unique titles) are embedded with the same fine-tuned model (last layer, last token);
   every item is scored by its L2 distance to the generation, so cold items rank like any
   other. Title embeddings are computed once per model state and reused for every batch.

Optional popularity re-weighting (``popularity_weight`` gamma; 0 = the paper's plain
grounding): per case, distances are min-max normalised to ``d`` in [0, 1] and training
popularity to ``p`` in [0, 1] (count / largest count), and items score
``-d / (1 + p) ** gamma``; gamma is a searched parameter, chosen on validation like
every other. Score-based: the harness masks seen items and ranks.

Diagnostics: ``generation/exact_title_share``, the share of generated texts that are a
catalog title token for token (over the test ranking: counted from the end of fitting).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import CaseBatch, FitContext, ItemIdentifiers, Recommender, RecommenderSpec, TrainingData
from benchmark.errors import PluginError
from benchmark.nn.causal_lm import (
    LLM_TRAINING_PARAMS,
    base_model,
    causal_lm,
    describe,
    hidden_states,
    left_padded,
    load_tokenizer,
    response_loss,
    special_ids,
)
from benchmark.nn.engine import pick_device, train
from benchmark.nn.model_paths import check_model_path
from benchmark.nn.sequences import TRANSFORMER_PARAMS, batches, prefix_count, training_prefixes
from benchmark.params import Param

OWNER = "recommender 'bigrec'"
PROMPT = ("The user watched these titles in order: {titles}. Write the title of the item the user will "
          "watch next. Answer:")

PARAMS = (
    Param("model_path", str, "", "causal LM checkpoint (local folder or hub name) or gemma3-270m (shipped, "
          "extra 'small'); empty: random init with the MiniLM tokenizer"),
    Param("lora_rank", int, 8, "LoRA rank for a pretrained model_path (peft); 0: full fine-tuning",
          profiles={"tiny": 0}, minimum=0),
    Param("layers", int, 4, "decoder layers (random init)", profiles={"tiny": 2}, minimum=1, low=2, high=6),
    *TRANSFORMER_PARAMS,
    Param("title_history", int, 10, "most recent history items the prompt lists by title (BIGRec: 10)",
          minimum=1),
    Param("max_title_tokens", int, 24, "tokens of an item title in prompts, responses and generations",
          minimum=1),
    Param("num_beams", int, 4, "beams of the title generation (BIGRec: 4)", minimum=1),
    Param("popularity_weight", float, 0.0, "gamma of the popularity re-weighting (0: plain L2 grounding)",
          minimum=0.0, maximum=10.0, low=0.0, high=2.0),
    Param("decode_batch", int, 32, "cases per generation batch", minimum=1),
    Param("valid_cases", int, 0, "validation cases used for early stopping (0: all); a fixed seeded "
          "sample, the same for every method", profiles={"tiny": 500, "cpu": 0}, minimum=0),
    *LLM_TRAINING_PARAMS,
)


def check_params(params: dict[str, Any]) -> None:
    check_model_path(params["model_path"], OWNER, "causal")


class TitlePrompts:
    """Token ids of BIGRec's prompt (the last ``title_history`` titles, comma-separated) and
    response (the next title + end token)."""

    def __init__(self, tokenizer, titles: list[str], max_title_tokens: int, title_history: int):
        self.tokenizer = tokenizer
        self.pad, self.eos = special_ids(tokenizer, OWNER)
        self.vocab_size = len(tokenizer)
        self.titles = [self.words(t)[:max_title_tokens] for t in titles]
        self.separator = self.words(",")
        self.title_history = title_history
        head, tail = PROMPT.split("{titles}")
        self.head, self.tail = self.words(head), self.words(tail)

    def words(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def prompt(self, history) -> list[int]:
        listed: list[int] = []
        for i, item in enumerate(history[-self.title_history:]):
            listed += (self.separator if i else []) + self.titles[int(item)]
        return self.head + listed + self.tail

    def sample(self, history, item: int) -> tuple[list[int], list[int]]:
        return self.prompt(history), self.titles[item] + [self.eos]


class BIGRecRecommender(Recommender):
    """Fine-tuned to write titles (response-only loss, the LLM family's training loop), then
    generation + grounding."""

    accepts = frozenset({"text"})

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed
        self.device = torch.device("cpu")

    def _build(self, identifiers: ItemIdentifiers, data: TrainingData) -> None:
        if identifiers.kind != "text" or identifiers.texts is None:
            raise PluginError(f"{OWNER} grounds generated titles to item titles: pair it with a text tokenizer "
                              f"(tid); got {identifiers.kind!r} identifiers")
        p = self.params
        torch.manual_seed(self.seed)
        self.prompts = TitlePrompts(load_tokenizer(p, OWNER), identifiers.texts, p["max_title_tokens"],
                                    p["title_history"])
        self.model = causal_lm(p, self.prompts.vocab_size, self.prompts.pad, self.prompts.eos, OWNER).to(self.device)
        counts = np.asarray(data.train_counts, dtype=np.float64)
        self.popularity = torch.as_tensor(counts / max(1.0, counts.max()), dtype=torch.float32)
        self._titles: torch.Tensor | None = None
        self._title_set = {tuple(t) for t in self.prompts.titles}
        self._generated = self._exact = 0

    def backbone(self) -> str:
        return describe(self.params)

    def _epoch_samples(self, data: TrainingData, epoch: int) -> list[tuple[Any, int]]:
        rows = training_prefixes(data.train, self.params["prefixes_per_user"], self.seed, epoch, OWNER)
        cap = data.max_history
        return [(data.train[u][max(0, t - cap):t], int(data.train[u][t])) for u, t in rows]

    def _loss(self, batch: list[tuple[Any, int]]) -> torch.Tensor:
        self._titles = None  # the model changes: title embeddings are stale
        pairs = [self.prompts.sample(history, item) for history, item in batch]
        return response_loss(self.model, pairs, self.prompts.pad, self.device)

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        p = self.params
        self.device = pick_device(p["device"], context.device, OWNER)
        self._build(identifiers, data)
        self.training = train(self.model, p, context, "train bigrec", prefix_count(data.train, p["prefixes_per_user"]),
                              lambda epoch: batches(self._epoch_samples(data, epoch), p["batch_size"]), self._loss,
                              lambda: context.validate(self, limit=p["valid_cases"] or None))
        self._titles = None  # early stopping restored the best weights
        self._generated = self._exact = 0  # diagnostics count the ranking passes after fitting

    # ---- grounding

    def embed(self, rows: list[list[int]], batch: int = 256) -> torch.Tensor:
        """Last-layer state of each row's last token (rows are token ids, left-padded here)."""
        out = []
        for start in range(0, len(rows), batch):
            part = [row or [self.prompts.eos] for row in rows[start:start + batch]]
            ids, mask = left_padded(part, self.prompts.pad)
            out.append(hidden_states(self.model, ids.to(self.device), mask.to(self.device))[:, -1].float())
        return torch.cat(out)

    def generate(self, histories) -> list[list[int]]:
        """One title (token ids, end token removed) per history, by beam search."""
        p = self.params
        ids, mask = left_padded([self.prompts.prompt(h) for h in histories], self.prompts.pad)
        out = base_model(self.model).generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), num_beams=p["num_beams"],
            max_new_tokens=p["max_title_tokens"], do_sample=False, eos_token_id=self.prompts.eos,
            pad_token_id=self.prompts.pad)
        texts = []
        for row in out[:, ids.shape[1]:].tolist():
            texts.append(row[:row.index(self.prompts.eos)] if self.prompts.eos in row else row)
        return texts

    def ground(self, generated: torch.Tensor) -> torch.Tensor:
        """Scores (cases, n_items): minus the L2 distance, re-weighted by popularity."""
        distance = torch.cdist(generated, self._titles)
        gamma = self.params["popularity_weight"]
        if not gamma:
            return -distance
        low, high = distance.min(1, keepdim=True).values, distance.max(1, keepdim=True).values
        normalised = (distance - low) / (high - low).clamp(min=1e-12)
        return -normalised / (1 + self.popularity.to(distance.device)) ** gamma

    def score(self, batch: CaseBatch) -> np.ndarray:
        p = self.params
        self.model.eval()
        with torch.no_grad():
            if self._titles is None:
                self._titles = self.embed(self.prompts.titles)
            scores = []
            for start in range(0, len(batch), p["decode_batch"]):
                texts = self.generate(batch.histories[start:start + p["decode_batch"]])
                self._generated += len(texts)
                self._exact += sum(tuple(t) in self._title_set for t in texts)
                scores.append(self.ground(self.embed(texts)).cpu())
        return torch.cat(scores).numpy()

    def diagnostics(self) -> dict[str, float]:
        return {"exact_title_share": self._exact / self._generated} if self._generated else {}


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="bigrec", version="9f71bc9754c9", family="LLM",
            factory=lambda params, seed: BIGRecRecommender(params, seed),
            accepts=BIGRecRecommender.accepts,
            description="causal LM writing the next title from the history's titles, grounded to items by "
            "L2 distance of LLM embeddings (BIGRec); optional popularity re-weighting",
            params=PARAMS,
            validate=check_params,
        )
    )
