"""``seq2seq``: a T5 encoder-decoder that writes the next item's identifier (TIGER, P5).

Input: an optional hashed user token, an optional text prompt, then the identifiers of
the user's last ``max_history`` items; output: the next item's identifier. Identifiers:

- ``codes`` (TIGER's RQ-VAE codes, P5-SemID/CID paths): one new token per (level, code),
  so the decoder writes exactly one token per level;
- ``text`` (P5-TID titles): the words of the title and an end token. The ``tiny``
  profile builds a word-level vocabulary from the catalog's identifier texts (every item's
  content may be read; cold items get words too); with ``model_path`` the pretrained
  model's own tokenizer is used and code/user tokens extend its vocabulary.

Training minimises the cross-entropy of the target identifier's tokens, optionally with
LETTER's ranking-guided generation loss (Wang et al., CIKM'24, eq. 6): the logits are
divided by a temperature ``rank_temperature`` < 1 before the softmax, which weights hard
negatives more. Ranking is constrained beam search over the trie of every item's
identifier (:mod:`benchmark.nn.beam_search`), with the user's seen items pruned in the trie
under the default protocol; the encoder runs once per user and its cross-attention keys
and values are computed once and shared by the user's beams. ``scoring=exact`` ranks the
whole catalogue instead by each item's identifier log-probability, every item computed
(:mod:`benchmark.nn.exact_scoring`: the decoder walks the trie level by level, the encoder
once per user), the seen items left out as the beam search prunes them.

Profiles. ``paper``: TIGER's transformer (4+4 layers, 6 heads of 64, d_model 128, MLP
1024, dropout 0.1) trained on every training prefix, or any pretrained T5 checkpoint
given as ``model_path`` (P5 used T5-small). ``tiny`` is a 2-core CPU budget, not the
papers' setting: 2+2 layers at d_model 128, and each epoch trains on a seeded sample of
``prefixes_per_user`` targets per user (half the user's most recent positions, half
drawn from the earlier ones, afresh every epoch), history items' text capped at
``max_item_words`` words, and validation on a fixed seeded sample of the validation cases.
``cpu`` (the boards) is the papers' training at a quarter of TIGER's width: 2+2 layers,
d_model 64, 4 heads of 16, MLP 256, dropout 0.1; a fresh sample of 20 training targets
per user each epoch (a fifth of every prefix: one validation per fifth of a pass), AdamW
at a constant 3e-3 after a 50-step warm-up, validation every epoch on every validation
case, patience 10, a 200-epoch cap and an eight-hour guard; everything else as ``tiny``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    Recommender,
    RecommenderSpec,
    TrainingData,
)
from benchmark.errors import ParameterError, PluginError
from benchmark.nn.beam_search import TokenTrie, beam_search
from benchmark.nn.decoders import T5Decoder
from benchmark.nn.dropout import use_fast_dropout
from benchmark.nn.engine import pick_device, train
from benchmark.nn.exact_scoring import (
    SCORING_PARAM,
    cases_per_pass,
    exact_scores,
    row_floats,
    top_items,
)
from benchmark.nn.model_paths import check_model_path
from benchmark.nn.sequences import TRAINING_PARAMS, TRANSFORMER_PARAMS, batches, prefix_count, training_prefixes
from benchmark.params import Param

PAD, EOS, UNK = 0, 1, 2
WORD = re.compile(r"\w+|[^\w\s]")

PARAMS = (
    Param("model_path", str, "", "pretrained T5 checkpoint (local path or hub name); empty: random init"),
    Param("layers", int, 4, "encoder and decoder layers each (random init)", profiles={"tiny": 2},
          minimum=1, low=1, high=4),
    *TRANSFORMER_PARAMS,
    Param("user_tokens", int, 2000, "hashed user-id tokens (TIGER: 2000); 0: no user token", minimum=0),
    Param("prompt", str, "", "text placed before the history (P5's instruction); empty: none"),
    Param("max_item_words", int, 16, "text identifiers: words of each history item's text in the input",
          profiles={"tiny": 8}, minimum=1),
    *TRAINING_PARAMS,
    Param("valid_cases", int, 0, "validation cases used for early stopping (0: all); a fixed seeded "
          "sample, the same for every method", profiles={"tiny": 500, "cpu": 0}, minimum=0),
    Param("rank_temperature", float, 1.0, "LETTER's ranking-guided loss temperature (1: plain "
          "cross-entropy; paper best 0.7-1.0)", minimum=0.05, maximum=5.0, low=0.5, high=1.2),
    Param("beam_size", int, 20, "beams of the ranking beam search (at least the ranked list's 20 items)",
          minimum=20),
    Param("decoding", str, "constrained", "constrained (trie of valid identifiers) or unconstrained "
          "(measures the share of identifiers naming no item)", options=("constrained", "unconstrained")),
    Param("decode_batch", int, 64, "users per beam-search batch", minimum=1),
    SCORING_PARAM,
)
OWNER = "recommender 'seq2seq'"


def check_params(params: dict[str, Any]) -> None:
    if params["scoring"] == "exact" and params["decoding"] == "unconstrained":
        raise ParameterError(f"{OWNER}: scoring=exact scores every item's identifier, so decoding=unconstrained "
                             "does not apply; give decoding=constrained or scoring=beam")
    check_model_path(params["model_path"], OWNER, "t5")


# --------------------------------------------------------------------------- vocabulary


def _duplicate_suffixes(keys: list[tuple]) -> list[str]:
    """``"# n"`` for the n-th (n >= 2) occurrence of a key, ``""`` for a first one."""
    count: dict[tuple, int] = {}
    out = []
    for key in keys:
        count[key] = count.get(key, 0) + 1
        out.append(f"# {count[key]}" if count[key] > 1 else "")
    return out


class Layout:
    """Token ids of everything the model reads and writes.

    Random init: ``0`` pad (also the decoder start), ``1`` end, ``2`` unknown word, then
    user tokens, words, and one token per (level, code). With a pretrained tokenizer, its
    own ids for words and special tokens, and user and code tokens appended after its
    vocabulary.
    """

    def __init__(self, identifiers: ItemIdentifiers, params: dict[str, Any], tokenizer=None):
        self.tokenizer = tokenizer
        self.n_user_tokens = params["user_tokens"]
        words: list[str] = []
        texts = identifiers.texts if identifiers.kind == "text" else []
        if tokenizer is None:
            # A word-level vocabulary of the prompt and the identifier texts, in first-seen order.
            seen: dict[str, None] = {}
            for text in [params["prompt"], ";"] + list(texts):
                for word in WORD.findall(text):
                    seen.setdefault(word, None)
            # Identical texts are told apart by a "# n" suffix (below). Where the suffix's
            # words are not in the vocabulary they read as the unknown token, which keeps
            # a pair apart but not three or more: then the suffix words join the vocabulary
            # (appended, so a catalogue that needs none keeps its ids).
            suffixes = _duplicate_suffixes([tuple(WORD.findall(t)) for t in texts])
            as_read = [tuple(w if w in seen else None for w in WORD.findall(f"{text} {suffix}"))
                       for text, suffix in zip(texts, suffixes)]
            if len(set(as_read)) < len(as_read):
                for suffix in suffixes:
                    for word in WORD.findall(suffix):
                        seen.setdefault(word, None)
            words = list(seen)
            self.word_id = {w: 3 + self.n_user_tokens + i for i, w in enumerate(words)}
            self.pad, self.eos, self.unk = PAD, EOS, UNK
            base = 3 + self.n_user_tokens + len(words)
            self.user_offset = 3
        else:
            # A tokenizer without an end token (BERT-style) ends sequences with its separator.
            self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            self.eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
            if self.eos is None:
                raise PluginError("recommender 'seq2seq': the tokenizer of model_path has neither an end "
                                  "nor a separator token; give a T5 checkpoint")
            self.unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else self.eos
            self.user_offset = len(tokenizer)
            base = len(tokenizer) + self.n_user_tokens
        self.code_offsets: list[int] = []
        if identifiers.kind == "codes":
            vocab_sizes = list(identifiers.vocab_sizes)
            offsets = np.r_[0, np.cumsum(vocab_sizes)[:-1]] + base
            self.code_offsets = [int(o) for o in offsets]
            base += int(sum(vocab_sizes))
        self.vocab_size = base
        self.prompt = self.words(params["prompt"])
        self.separator = self.words(";") if identifiers.kind == "text" else []
        # Output sequences (what the decoder writes) and input pieces, per item.
        if identifiers.kind == "codes":
            out = [list(int(o) + c for o, c in zip(self.code_offsets, row)) for row in identifiers.codes.tolist()]
            pieces = out
        elif identifiers.kind == "text":
            out, pieces = [], []
            read = [self.words(text) for text in texts]
            # Texts with the same tokens: the later ones are numbered.
            for tokens, suffix in zip(read, _duplicate_suffixes([tuple(t) for t in read])):
                tokens = tokens + self.words(suffix)
                out.append(tokens + [self.eos])
                pieces.append(tokens[: params["max_item_words"]] + self.separator)
        else:
            raise PluginError(f"recommender 'seq2seq' cannot read {identifiers.kind!r} identifiers; "
                              "it accepts codes and text")
        self.outputs = out
        # Codes have one token per level; text identifiers end with the end token.
        self.end_token = self.eos if identifiers.kind == "text" else None
        width = max(len(p) for p in pieces)
        table = np.full((len(pieces), width), self.pad, np.int64)
        for i, piece in enumerate(pieces):
            table[i, : len(piece)] = piece
        self.piece_table = torch.as_tensor(table)
        self.target_length = max(len(o) for o in out)
        targets = np.full((len(out), self.target_length), -100, np.int64)
        for i, o in enumerate(out):
            targets[i, : len(o)] = o
        self.target_table = torch.as_tensor(targets)

    def words(self, text: str) -> list[int]:
        if not text:
            return []
        if self.tokenizer is not None:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return [self.word_id.get(w, self.unk) for w in WORD.findall(text)]

    def encoder_inputs(self, users: np.ndarray, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded input ids and attention mask: [user] [prompt] item pieces [end]."""
        n = len(histories)
        longest = max((len(h) for h in histories), default=0)
        index = np.full((n, max(1, longest)), -1, np.int64)
        for row, history in enumerate(histories):
            if len(history):
                index[row, : len(history)] = history
        index = torch.as_tensor(index)
        pieces = self.piece_table[index.clamp(min=0)]
        pieces[index < 0] = self.pad
        pieces = pieces.reshape(n, -1)
        head = []
        if self.n_user_tokens:
            head.append(torch.as_tensor(self.user_offset + np.asarray(users) % self.n_user_tokens)[:, None])
        if self.prompt:
            head.append(torch.as_tensor(self.prompt).expand(n, -1))
        tail = torch.full((n, 1), self.eos, dtype=torch.long)
        ids = torch.cat(head + [pieces, tail], dim=1)
        # Squeeze the padding out of the middle: real tokens first, in order, then pads.
        is_pad = ids == self.pad
        order = torch.argsort(is_pad.to(torch.int8), dim=1, stable=True)
        ids = ids.gather(1, order)
        mask = ids != self.pad
        width = int(mask.sum(1).max())
        return ids[:, :width], mask[:, :width].long()


# --------------------------------------------------------------------------- the recommender


class Seq2SeqRecommender(Recommender):
    accepts = frozenset({"codes", "text"})

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed
        self.invalid_share: float | None = None

    # ---- building

    def _build(self, identifiers: ItemIdentifiers):
        from transformers import T5Config, T5ForConditionalGeneration

        p = self.params
        tokenizer = None
        if p["model_path"]:
            from transformers import AutoConfig, AutoTokenizer

            config = AutoConfig.from_pretrained(p["model_path"])
            if config.model_type != "t5":
                raise ParameterError(f"recommender 'seq2seq': model_path {p['model_path']!r} is a "
                                     f"{config.model_type!r} model; give a T5 checkpoint (e.g. t5-small)")
            tokenizer = AutoTokenizer.from_pretrained(p["model_path"])
        self.layout = Layout(identifiers, p, tokenizer)
        if p["model_path"]:
            model = T5ForConditionalGeneration.from_pretrained(p["model_path"], attn_implementation="sdpa")
            model.resize_token_embeddings(self.layout.vocab_size)
        else:
            config = T5Config(
                vocab_size=self.layout.vocab_size, d_model=p["d_model"], d_kv=p["head_dim"], d_ff=p["d_ff"],
                num_layers=p["layers"], num_decoder_layers=p["layers"], num_heads=p["heads"],
                dropout_rate=p["dropout"], pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                feed_forward_proj="relu", tie_word_embeddings=True, attn_implementation="sdpa",
            )
            model = T5ForConditionalGeneration(config)
        # Speed on CPU, the same model: fused attention (SDPA, the relative position bias as
        # its additive mask) and dropout masks drawn 16 bits at a time.
        use_fast_dropout(model)
        self.model = model.to(self.device)
        self.trie = TokenTrie(self.layout.outputs, self.layout.vocab_size)

    def backbone(self) -> str:
        if self.params["model_path"]:
            return f"T5 {self.params['model_path']}"
        p = self.params
        return f"T5 {p['layers']}+{p['layers']} d{p['d_model']} {p['heads']}x{p['head_dim']} (random init)"

    # ---- training

    def _batch(self, data: TrainingData, rows: np.ndarray):
        users, positions = rows[:, 0], rows[:, 1]
        cap = data.max_history
        histories = [data.train[u][max(0, t - cap):t] for u, t in zip(users, positions)]
        targets = np.array([data.train[u][t] for u, t in zip(users, positions)])
        ids, mask = self.layout.encoder_inputs(users, histories)
        labels = self.layout.target_table[torch.as_tensor(targets)]
        # Drop trailing columns no target uses (text identifiers vary in length).
        labels = labels[:, : int((labels != -100).sum(1).max())]
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def _loss(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        decoder_ids = self.model._shift_right(labels)  # start token, then the target shifted right
        logits = self.model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        # LETTER's ranking-guided generation loss: softmax at temperature tau (tau=1: plain NLL).
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]) / self.params["rank_temperature"],
            labels.reshape(-1), ignore_index=-100)

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        p = self.params
        self.device = pick_device(p["device"], context.device, OWNER)
        torch.manual_seed(self.seed)
        self._build(identifiers)
        self.keep_seen = context.keep_seen

        def epoch_batches(epoch: int):
            rows = training_prefixes(data.train, p["prefixes_per_user"], self.seed, epoch, OWNER)
            return batches(rows, p["batch_size"])

        self.training = train(self.model, p, context, "train seq2seq", prefix_count(data.train, p["prefixes_per_user"]),
                              epoch_batches, lambda rows: self._loss(*self._batch(data, rows)),
                              lambda: context.validate(self, limit=p["valid_cases"] or None))

    # ---- ranking

    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
        if self.params["scoring"] == "exact":
            self.invalid_share = 0.0  # every ranked identifier names an item
            return top_items(self.exact_scores(batch), k, batch.exclude)
        p = self.params
        beam = max(k, p["beam_size"])
        constrained = p["decoding"] == "constrained"
        out = np.full((len(batch), k), -1, np.int64)
        invalid, finite = 0, 0
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(batch), p["decode_batch"]):
                part = slice(start, start + p["decode_batch"])
                ids, mask = self.layout.encoder_inputs(batch.users[part], batch.histories[part])
                decoder = T5Decoder(self.model, ids.to(self.device), mask.to(self.device))
                exclude = batch.exclude[part] if batch.exclude is not None else None
                result = beam_search(decoder, self.trie, len(ids), beam, exclude=exclude, constrained=constrained,
                                     pad_token=self.layout.pad, end_token=self.layout.end_token)
                out[part] = result.items[:, :k].numpy()
                live = torch.isfinite(result.scores)
                invalid += int(result.invalid[live].sum())
                finite += int(live.sum())
        self.invalid_share = invalid / finite if finite else 0.0
        return out

    def exact_scores(self, batch: CaseBatch) -> torch.Tensor:
        """``(len(batch), n_items)``: each item's identifier log-probability given the case's input."""
        floats = row_floats(self.model.config, self.trie.max_length)
        step = cases_per_pass(self.trie, floats, self.params["decode_batch"])
        parts = []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(batch), step):
                part = slice(start, start + step)
                ids, mask = self.layout.encoder_inputs(batch.users[part], batch.histories[part])
                decoder = T5Decoder(self.model, ids.to(self.device), mask.to(self.device))
                parts.append(exact_scores(decoder, self.trie, len(ids)))
        return torch.cat(parts) if parts else torch.zeros(0, self.trie.n_items)

    def diagnostics(self) -> dict[str, float]:
        if self.invalid_share is None:
            return {}
        return {"invalid_id_share": self.invalid_share}


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="seq2seq", version="2", family="seq2seq",
            factory=lambda params, seed: Seq2SeqRecommender(params, seed),
            accepts=Seq2SeqRecommender.accepts,
            description="T5 encoder-decoder generating the next item's identifier; constrained beam search",
            params=PARAMS,
            validate=check_params,
        )
    )
