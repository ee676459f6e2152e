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
identifier (:mod:`benchmark.beam_search`), with the user's seen items pruned in the trie
under the default protocol; the encoder runs once per user and its cross-attention keys
and values are computed once and shared by the user's beams.

Profiles. ``paper``: TIGER's transformer (4+4 layers, 6 heads of 64, d_model 128, MLP
1024, dropout 0.1) trained on every training prefix, or any pretrained T5 checkpoint
given as ``model_path`` (P5 used T5-small). ``tiny`` is a 2-core CPU budget, not the
papers' setting: 2+2 layers at d_model 128, and each epoch trains on a seeded sample of
``prefixes_per_user`` targets per user (half the user's most recent positions, half
drawn from the earlier ones, afresh every epoch), history items' text capped at
``max_item_words`` words, and validation on a fixed seeded sample of the validation cases.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark import hookimpl
from benchmark.beam_search import TokenTrie, beam_search
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    Recommender,
    RecommenderSpec,
    TrainingData,
)
from benchmark.decoders import T5Decoder
from benchmark.errors import ParameterError, PluginError
from benchmark.params import Param
from benchmark.training import EarlyStopping

PAD, EOS, UNK = 0, 1, 2
WORD = re.compile(r"\w+|[^\w\s]")

PARAMS = (
    Param("model_path", str, "", "pretrained T5 checkpoint (local path or hub name); empty: random init"),
    Param("layers", int, 4, "encoder and decoder layers each (random init)", profiles={"tiny": 2},
          minimum=1, low=1, high=4),
    Param("heads", int, 6, "attention heads", profiles={"tiny": 4}, minimum=1),
    Param("head_dim", int, 64, "width of each head", profiles={"tiny": 32}, minimum=8),
    Param("d_model", int, 128, "model width", minimum=16, choices=(64, 128, 256)),
    Param("d_ff", int, 1024, "feed-forward width", profiles={"tiny": 512}, minimum=16),
    Param("dropout", float, 0.1, "dropout rate", minimum=0.0, maximum=0.9, low=0.0, high=0.3),
    Param("user_tokens", int, 2000, "hashed user-id tokens (TIGER: 2000); 0: no user token", minimum=0),
    Param("prompt", str, "", "text placed before the history (P5's instruction); empty: none"),
    Param("max_item_words", int, 16, "text identifiers: words of each history item's text in the input",
          profiles={"tiny": 8}, minimum=1),
    Param("learning_rate", float, 1e-3, "peak AdamW learning rate (linear warm-up, cosine decay)",
          profiles={"tiny": 3e-3}, minimum=0.0, low=5e-4, high=1e-2, log=True),
    Param("weight_decay", float, 0.01, "AdamW weight decay", minimum=0.0, low=1e-4, high=0.1, log=True),
    Param("warmup", float, 0.05, "share of the training steps spent warming up", minimum=0.0, maximum=1.0),
    Param("batch_size", int, 256, "training prefixes per step", minimum=1),
    Param("epochs", int, 200, "maximum training epochs", profiles={"tiny": 4}, minimum=1),
    Param("patience", int, 10, "epochs without validation NDCG@10 gain before stopping",
          profiles={"tiny": 2}, minimum=1),
    Param("prefixes_per_user", int, 0, "training targets per user and epoch (0: every prefix); "
          "half the most recent, half drawn from earlier ones, afresh each epoch", profiles={"tiny": 5}, minimum=0),
    Param("valid_cases", int, 0, "validation cases used for early stopping (0: all); a fixed seeded "
          "sample, the same for every method", profiles={"tiny": 500}, minimum=0),
    Param("rank_temperature", float, 1.0, "LETTER's ranking-guided loss temperature (1: plain "
          "cross-entropy; paper best 0.7-1.0)", minimum=0.05, maximum=5.0, low=0.5, high=1.2),
    Param("beam_size", int, 20, "beams of the ranking beam search (>= the list length)", minimum=1),
    Param("decoding", str, "constrained", "constrained (trie of valid identifiers) or unconstrained "
          "(measures the share of identifiers naming no item)"),
    Param("decode_batch", int, 64, "users per beam-search batch", minimum=1),
    Param("device", str, "auto", "auto (cuda when available), cpu or cuda"),
)


def check_params(params: dict[str, Any]) -> None:
    if params["decoding"] not in ("constrained", "unconstrained"):
        raise ParameterError(f"recommender 'seq2seq': parameter 'decoding' is {params['decoding']!r}; "
                             "give constrained or unconstrained")
    if params["device"] not in ("auto", "cpu", "cuda"):
        raise ParameterError(f"recommender 'seq2seq': parameter 'device' is {params['device']!r}; "
                             "give auto, cpu or cuda")


# --------------------------------------------------------------------------- vocabulary


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
            out, pieces, seen_out = [], [], {}
            for text in texts:
                tokens = self.words(text)
                key = tuple(tokens)
                if key in seen_out:  # two texts with the same tokens: number the later one
                    seen_out[key] += 1
                    tokens = tokens + self.words(f"# {seen_out[key]}")
                else:
                    seen_out[key] = 1
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

    def _device(self, context: FitContext) -> torch.device:
        choice = self.params["device"]
        if choice == "auto":
            return torch.device(context.device if context.device else "cpu")
        if choice == "cuda" and not torch.cuda.is_available():
            raise ParameterError("recommender 'seq2seq': device=cuda but no CUDA device is available; use auto or cpu")
        return torch.device(choice)

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
            model = T5ForConditionalGeneration.from_pretrained(p["model_path"])
            model.resize_token_embeddings(self.layout.vocab_size)
        else:
            config = T5Config(
                vocab_size=self.layout.vocab_size, d_model=p["d_model"], d_kv=p["head_dim"], d_ff=p["d_ff"],
                num_layers=p["layers"], num_decoder_layers=p["layers"], num_heads=p["heads"],
                dropout_rate=p["dropout"], pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                feed_forward_proj="relu", tie_word_embeddings=True,
            )
            model = T5ForConditionalGeneration(config)
        self.model = model.to(self.device)
        self.trie = TokenTrie(self.layout.outputs, self.layout.vocab_size)

    def backbone(self) -> str:
        if self.params["model_path"]:
            return f"T5 {self.params['model_path']}"
        p = self.params
        return f"T5 {p['layers']}+{p['layers']} d{p['d_model']} {p['heads']}x{p['head_dim']} (random init)"

    # ---- training

    def _samples(self, data: TrainingData, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(user, target position) pairs of one epoch: every prefix, or a seeded sample per user."""
        per_user = self.params["prefixes_per_user"]
        rng = np.random.default_rng([self.seed, epoch])
        users, positions = [], []
        for user, sequence in enumerate(data.train):
            n = len(sequence)
            if n < 2:
                continue
            candidates = np.arange(1, n)
            if per_user and len(candidates) > per_user:
                # Half the sample: the most recent targets; the rest drawn from the earlier ones.
                recent = per_user // 2
                older = rng.choice(candidates[: -recent or None], per_user - recent, replace=False)
                candidates = np.r_[older, candidates[len(candidates) - recent:]] if recent else older
            users.append(np.full(len(candidates), user))
            positions.append(candidates)
        if not users:
            raise PluginError("recommender 'seq2seq': no user has two training items to learn from")
        users_np, positions_np = np.concatenate(users), np.concatenate(positions)
        order = rng.permutation(len(users_np))
        return users_np[order], positions_np[order]

    def _batch(self, data: TrainingData, users: np.ndarray, positions: np.ndarray):
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
        self.device = self._device(context)
        torch.manual_seed(self.seed)
        self._build(identifiers)
        self.keep_seen = context.keep_seen
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=p["learning_rate"], weight_decay=p["weight_decay"])
        steps_per_epoch = math.ceil(len(self._samples(data, 0)[0]) / p["batch_size"])
        total = steps_per_epoch * p["epochs"]
        warmup = max(1, int(p["warmup"] * total))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        stopper = EarlyStopping(p["patience"])
        bar = tqdm(total=total, desc="train seq2seq", unit="step", disable=not context.progress, leave=False)
        epoch = -1
        for epoch in range(p["epochs"]):
            self.model.train()
            users, positions = self._samples(data, epoch)
            losses = []
            for start in range(0, len(users), p["batch_size"]):
                part = slice(start, start + p["batch_size"])
                loss = self._loss(*self._batch(data, users[part], positions[part]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                bar.update(1)
            self.model.eval()
            metrics = context.validate(self, limit=p["valid_cases"] or None)
            metrics["loss"] = float(np.mean(losses))
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", ndcg10=f"{metrics['ndcg@10']:.4f}")
            context.epoch_end(epoch, metrics)
            if stopper.step(metrics["ndcg@10"], self.model):
                break
        bar.close()
        stopper.restore(self.model)
        self.model.eval()
        self.epochs_trained = epoch + 1
        self.best_epoch = stopper.best_epoch + 1

    # ---- ranking

    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
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

    def diagnostics(self) -> dict[str, float]:
        if self.invalid_share is None:
            return {}
        return {"invalid_id_share": self.invalid_share}


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="seq2seq",
            factory=lambda params, seed: Seq2SeqRecommender(params, seed),
            accepts=Seq2SeqRecommender.accepts,
            description="T5 encoder-decoder generating the next item's identifier; constrained beam search",
            params=PARAMS,
            validate=check_params,
        )
    )
