"""``setrec``: query-guided simultaneous generation of an item's token set (SETRec).

Lin et al., SIGIR'25, §4.2.2. The history is every item's token set (from a joint
``token_set`` tokenizer, e.g. ``setrec``) flattened, one item after another:

- **sparse attention mask**: a token never sees the other tokens of its own item, and sees
  every token of the earlier items (and itself); ``sparse_mask=false`` is the w/o-SA
  ablation, the token-level causal mask;
- **one shared position per item**: all tokens of the i-th history item sit at position i
  (T5: its relative-position bias is computed from item positions; decoder-only: the
  ``position_ids`` given to the model);
- **learnable queries**: N+1 query vectors, one per token dimension, read the encoded
  history (T5: as decoder inputs; decoder-only: appended after the history), each sees
  the history and itself only, and one forward pass produces every token of the next
  item; ``learn_queries=false`` freezes them at their random start (w/o-Query ablation).

Loss (eq. 6 + 8): for each dimension k, a softmax of the generated token's inner products
with that dimension's token of every item, against the target, summed over dimensions;
plus ``alpha`` x the tokenizer's autoencoder reconstruction loss. The softmax runs over
the items with training interactions: cold items are never a training target, and as
negatives they would only be pushed down. The tokenizer's modules are trained with the
model (its CF projection and autoencoder).

Grounding (eq. 7): every item is scored by (1 - beta) x the CF-token inner product +
beta x the sum of the semantic-token inner products, one matrix product per dimension: a
score-based recommender, so the harness masks seen items and ranks the whole catalog.
**beta is chosen on validation** from ``beta_grid`` at every epoch (the N@10-best value),
never on test; the chosen value is stored with the run as ``selection/beta``.

Backbones (``backbone``): ``t5`` (encoder-decoder) or ``decoder`` (decoder-only, Qwen2
architecture), both from ``transformers``: random init at the profile's size (decoder-only
gets 2 x ``layers`` layers, the T5's parameter budget), or a pretrained ``model_path``
(the paper: T5-small fully fine-tuned; Qwen2.5-1.5B with LoRA, ``lora_rank`` > 0).
``tiny`` is the seq2seq family's 2-core CPU budget: 2+2 layers at d_model 128, a seeded
sample of ``prefixes_per_user`` training targets per user and epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import CaseBatch, FitContext, ItemIdentifiers, Recommender, RecommenderSpec, TrainingData
from benchmark.errors import ParameterError, PluginError
from benchmark.nn.engine import pick_device, train
from benchmark.nn.model_paths import check_model_path
from benchmark.nn.sequences import (
    TRAINING_PARAMS,
    TRANSFORMER_PARAMS,
    batches,
    prefix_count,
    right_aligned,
    training_prefixes,
)
from benchmark.params import Param

OWNER = "recommender 'setrec'"
BACKBONES = ("t5", "decoder")

PARAMS = (
    Param("backbone", str, "t5", "t5 (encoder-decoder) or decoder (decoder-only, Qwen2 architecture)",
          options=BACKBONES),
    Param("model_path", str, "", "pretrained checkpoint of the backbone's kind (local path or hub name); "
          "empty: random init"),
    Param("lora_rank", int, 0, "LoRA rank for a pretrained model_path (peft); 0: full fine-tuning", minimum=0),
    Param("layers", int, 4, "T5: encoder and decoder layers each; decoder-only: 2 x this many (random init)",
          profiles={"tiny": 2}, minimum=1, low=1, high=4),
    *TRANSFORMER_PARAMS,
    Param("alpha", float, 0.5, "weight of the autoencoder reconstruction loss, eq. (8) (paper: 0.5-0.7)",
          minimum=0.0, low=0.0, high=1.0),
    Param("beta_grid", str, "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
          "values of beta (eq. 7: weight of the semantic scores) tried on validation; one value fixes it"),
    Param("learn_queries", bool, True, "train the query vectors (false: frozen random, the w/o-Query ablation)"),
    Param("sparse_mask", bool, True, "SETRec's sparse history mask (false: token-level causal, the w/o-SA "
          "ablation)"),
    *TRAINING_PARAMS,
    Param("valid_cases", int, 0, "validation cases used for early stopping and beta (0: all); a fixed "
          "seeded sample, the same for every method", minimum=0),
)


def beta_grid(params: dict[str, Any]) -> list[float]:
    try:
        grid = [float(x) for x in str(params["beta_grid"]).split(",") if x.strip()]
    except ValueError:
        grid = []
    if not grid or min(grid) < 0 or max(grid) > 1:
        raise ParameterError(f"{OWNER}: parameter 'beta_grid' is {params['beta_grid']!r}; give values in "
                             "[0, 1] separated by commas, e.g. 0,0.5,1")
    return grid


def check_params(params: dict[str, Any]) -> None:
    beta_grid(params)
    if params["lora_rank"] and not params["model_path"]:
        raise ParameterError(f"{OWNER}: lora_rank={params['lora_rank']} needs a pretrained model_path "
                             "(a random-init backbone is trained in full); set model_path or lora_rank=0")
    t5 = params["backbone"] == "t5"
    check_model_path(params["model_path"], OWNER, "t5" if t5 else "causal",
                     other="or set backbone=decoder for a decoder-only model" if t5 else "or set backbone=t5 for a T5")


# --------------------------------------------------------------------------- masks and positions


def history_mask(valid: torch.Tensor, group: int, sparse: bool) -> torch.Tensor:
    """Boolean (B, L, L) mask, ``True`` where query token a may attend to key token b.

    ``valid`` (B, L) marks real tokens, ``group`` tokens per item. Sparse: b belongs to an
    earlier item than a; causal: b comes before a. Every token also sees itself.
    """
    length = valid.shape[1]
    position = torch.arange(length, device=valid.device)
    if sparse:
        item = position // group
        earlier = item[None, :] < item[:, None]
    else:
        earlier = position[None, :] < position[:, None]
    return (earlier[None] & valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=valid.device)[None]


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean (B, Q, K) mask to the additive (B, 1, Q, K) form every attention kernel takes."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, torch.finfo(dtype).min)[:, None]


def share_t5_positions(attention: torch.nn.Module, group: int) -> None:
    """Make a T5 attention layer's relative-position bias count items, not tokens: every
    ``group`` consecutive tokens share one position."""

    def compute_bias(query_length, key_length, device=None, past_seen_tokens=0):
        device = device or attention.relative_attention_bias.weight.device
        context = (torch.arange(query_length, device=device) + past_seen_tokens) // group
        memory = torch.arange(key_length, device=device) // group
        bucket = attention._relative_position_bucket(
            memory[None, :] - context[:, None], bidirectional=not attention.is_decoder,
            num_buckets=attention.relative_attention_num_buckets,
            max_distance=attention.relative_attention_max_distance)
        return attention.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)

    attention.compute_bias = compute_bias


# --------------------------------------------------------------------------- the model


class SetRecModel(torch.nn.Module):
    """Backbone + the tokenizer's token modules + query vectors.

    ``forward(index)``: ``index`` (B, H) history items right-aligned, -1 for padding;
    returns the generated tokens (B, n_tokens, token_dim).
    """

    def __init__(self, tokens: torch.nn.Module, backbone: torch.nn.Module, kind: str, width: int,
                 learn_queries: bool, sparse: bool):
        super().__init__()
        self.tokens, self.backbone, self.kind, self.sparse = tokens, backbone, kind, sparse
        self.group = tokens.n_tokens
        dim = tokens.token_dim
        same = dim == width
        self.token_in = torch.nn.Identity() if same else torch.nn.Linear(dim, width)
        self.token_out = torch.nn.Identity() if same else torch.nn.Linear(width, dim)
        embeddings = backbone.get_input_embeddings()
        # Queries start at the scale of the backbone's own input embeddings.
        scale = float(embeddings.weight.detach().float().std()) if embeddings is not None else 0.02
        self.queries = torch.nn.Parameter(torch.randn(self.group, width) * scale, requires_grad=learn_queries)

    def generate(self, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Generated tokens for histories ``index`` whose items have tokens ``table``."""
        valid_items = index >= 0
        # A case with no history reads one blank item so attention rows stay defined.
        valid_items[:, -1] |= ~valid_items.any(1)
        return self.read(table[index.clamp(min=0)] * (index >= 0)[..., None, None], valid_items)

    def read(self, history: torch.Tensor, valid_items: torch.Tensor) -> torch.Tensor:
        """Generated tokens (B, n_tokens, token_dim) from history token sets (B, H, n_tokens,
        token_dim) whose real items ``valid_items`` (B, H) marks."""
        n, h, g = history.shape[:3]
        x = self.token_in(history).reshape(n, h * g, -1)
        valid = valid_items.repeat_interleave(g, dim=1)
        mask = history_mask(valid, g, self.sparse)
        queries = self.queries.to(x.dtype).expand(n, -1, -1)
        if self.kind == "t5":
            encoded = self.backbone.encoder(inputs_embeds=x, attention_mask=additive(mask, x.dtype)).last_hidden_state
            # Each query sees itself only: the tokens of one item come out independently.
            own = torch.eye(g, dtype=torch.bool, device=x.device).expand(n, -1, -1)
            out = self.backbone.decoder(
                inputs_embeds=queries, attention_mask=additive(own, x.dtype), encoder_hidden_states=encoded,
                encoder_attention_mask=valid.long(), use_cache=False).last_hidden_state
        else:
            total = h * g + g
            full = torch.zeros(n, total, total, dtype=torch.bool, device=x.device)
            full[:, : h * g, : h * g] = mask
            full[:, h * g:, : h * g] = valid[:, None, :]
            full[:, h * g:, h * g:] = torch.eye(g, dtype=torch.bool, device=x.device)
            positions = torch.cat([torch.arange(h, device=x.device).repeat_interleave(g),
                                   torch.full((g,), h, device=x.device)])
            out = self.backbone(inputs_embeds=torch.cat([x, queries], 1), attention_mask=additive(full, x.dtype),
                                position_ids=positions.expand(n, -1), use_cache=False).last_hidden_state[:, h * g:]
        return self.token_out(out)


def item_logits(generated: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per-dimension inner products (B, n_tokens, n_items) of generated and item tokens."""
    return torch.einsum("bqd,nqd->bqn", generated, table)


# --------------------------------------------------------------------------- the recommender


class SetRecRecommender(Recommender):
    accepts = frozenset({"token_set"})

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed
        self.beta = 0.5
        self._table: torch.Tensor | None = None
        self._parts: dict[bytes, tuple[np.ndarray, np.ndarray]] | None = None

    # ---- building

    def _backbone(self) -> tuple[torch.nn.Module, int]:
        p = self.params
        if p["model_path"]:
            from transformers import AutoConfig, AutoModel

            config = AutoConfig.from_pretrained(p["model_path"])
            encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
            if (p["backbone"] == "t5") != (encoder_decoder and config.model_type == "t5"):
                raise ParameterError(f"{OWNER}: model_path {p['model_path']!r} is a {config.model_type!r} model, "
                                     f"not a {'T5' if p['backbone'] == 't5' else 'decoder-only'} one; "
                                     "set backbone to match it")
            model = AutoModel.from_pretrained(p["model_path"])
            width = int(getattr(config, "d_model", None) or config.hidden_size)
        elif p["backbone"] == "t5":
            from transformers import T5Config, T5Model

            model = T5Model(T5Config(
                vocab_size=2, d_model=p["d_model"], d_kv=p["head_dim"], d_ff=p["d_ff"], num_layers=p["layers"],
                num_decoder_layers=p["layers"], num_heads=p["heads"], dropout_rate=p["dropout"],
                feed_forward_proj="relu", pad_token_id=0, decoder_start_token_id=0))
            width = p["d_model"]
        else:
            from transformers import Qwen2Config, Qwen2Model

            config = Qwen2Config(
                vocab_size=2, hidden_size=p["d_model"], intermediate_size=p["d_ff"],
                num_hidden_layers=2 * p["layers"], num_attention_heads=p["heads"], num_key_value_heads=p["heads"],
                max_position_embeddings=512, attention_dropout=p["dropout"], tie_word_embeddings=False)
            config.head_dim = p["head_dim"]
            model = Qwen2Model(config)
            width = p["d_model"]
        return model, width

    def _build(self, identifiers: ItemIdentifiers, data: TrainingData) -> None:
        if identifiers.kind != "token_set" or identifiers.modules is None:
            raise PluginError(f"{OWNER} trains token sets with their modules; pair it with a joint token_set "
                              f"tokenizer such as 'setrec' (got {identifiers.kind!r} identifiers)")
        p = self.params
        torch.manual_seed(self.seed)
        backbone, width = self._backbone()
        tokens = identifiers.modules
        if p["backbone"] == "t5":
            share_t5_positions(backbone.encoder.block[0].layer[0].SelfAttention, tokens.n_tokens)
        if p["lora_rank"]:
            from peft import LoraConfig, get_peft_model

            backbone = get_peft_model(backbone, LoraConfig(r=p["lora_rank"], lora_alpha=2 * p["lora_rank"],
                                                           lora_dropout=0.05, target_modules="all-linear"))
        self.model = SetRecModel(tokens, backbone, p["backbone"], width, p["learn_queries"], p["sparse_mask"])
        self.model.to(self.device)
        self.has_cf, self.n_semantic = tokens.has_cf, tokens.n_semantic
        grid = beta_grid(p)
        # Without one of the two kinds of token, beta has nothing to weigh.
        self.grid = grid if self.has_cf and self.n_semantic else [1.0 if self.n_semantic else 0.0]
        self.warm = torch.as_tensor(np.flatnonzero(data.train_counts > 0), device=self.device)
        position = torch.full((data.n_items,), -1, dtype=torch.long)
        position[self.warm.cpu()] = torch.arange(len(self.warm))
        self.warm_position = position.to(self.device)
        self.n_items = data.n_items

    def backbone(self) -> str:
        p = self.params
        name = "T5" if p["backbone"] == "t5" else "decoder-only"
        if p["model_path"]:
            return f"{name} {p['model_path']}" + (f" LoRA r{p['lora_rank']}" if p["lora_rank"] else "")
        layers = f"{p['layers']}+{p['layers']}" if p["backbone"] == "t5" else f"{2 * p['layers']}L"
        return f"{name} {layers} d{p['d_model']} {p['heads']}x{p['head_dim']} (random init)"

    # ---- training

    def _loss(self, data: TrainingData, rows: np.ndarray) -> torch.Tensor:
        users, positions = rows[:, 0], rows[:, 1]
        cap = data.max_history
        index = right_aligned([data.train[u][max(0, t - cap):t] for u, t in zip(users, positions)])
        targets = torch.as_tensor([int(data.train[u][t]) for u, t in zip(users, positions)], device=self.device)
        table = self.model.tokens()
        generated = self.model.generate(table, index.to(self.device))
        logits = item_logits(generated.float(), table[self.warm].float())  # (B, n_tokens, warm items)
        target = self.warm_position[targets][:, None].expand(-1, logits.shape[1])
        generation = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1).mean()
        return generation + self.params["alpha"] * self.model.tokens.reconstruction_loss()

    def _validate(self, context: FitContext) -> tuple[float, dict[str, float]]:
        """(beta, metrics) of the beta in the grid with the best validation NDCG@10."""
        self.model.eval()
        self._table = None
        self._parts = {}
        best: tuple[float, dict[str, float]] | None = None
        try:
            for beta in self.grid:
                self.beta = beta
                metrics = context.validate(self, limit=self.params["valid_cases"] or None)
                if best is None or metrics["ndcg@10"] > best[1]["ndcg@10"]:
                    best = (beta, metrics)
        finally:
            self._parts = None
        assert best is not None
        return best

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        p = self.params
        self.device = pick_device(p["device"], context.device, OWNER)
        self._build(identifiers, data)

        def epoch_batches(epoch: int):
            rows = training_prefixes(data.train, p["prefixes_per_user"], self.seed, epoch, OWNER)
            return batches(rows, p["batch_size"])

        def validate() -> dict[str, float]:
            beta, metrics = self._validate(context)
            return {**metrics, "beta": beta}

        self.training = train(self.model, p, context, "train setrec", prefix_count(data.train, p["prefixes_per_user"]),
                              epoch_batches, lambda rows: self._loss(data, rows), validate)
        self._table = None
        # beta as validation chose it at the epoch whose weights were kept.
        self.beta = self.training.best_record["beta"]

    # ---- scoring

    def _item_table(self) -> torch.Tensor:
        if self._table is None:
            with torch.no_grad():
                self._table = self.model.tokens().float()
        return self._table

    def _score_parts(self, batch: CaseBatch) -> tuple[np.ndarray, np.ndarray]:
        """(CF scores, summed semantic scores), each (len(batch), n_items)."""
        key = None
        if self._parts is not None:
            key = batch.users.tobytes() + b"|" + np.concatenate([np.asarray(h, np.int64) for h in batch.histories]
                                                                + [np.zeros(0, np.int64)]).tobytes()
            if key in self._parts:
                return self._parts[key]
        table = self._item_table()
        with torch.no_grad():
            generated = self.model.generate(table, right_aligned(batch.histories).to(self.device)).float()
            logits = item_logits(generated, table)
        zeros = torch.zeros(len(batch), self.n_items, device=logits.device)
        cf = logits[:, 0] if self.has_cf else zeros
        semantic = logits[:, int(self.has_cf):].sum(1) if self.n_semantic else zeros
        parts = (cf.cpu().numpy(), semantic.cpu().numpy())
        if key is not None:
            self._parts[key] = parts
        return parts

    def score(self, batch: CaseBatch) -> np.ndarray:
        self.model.eval()
        cf, semantic = self._score_parts(batch)
        return (1 - self.beta) * cf + self.beta * semantic

    def diagnostics(self) -> dict[str, float]:
        return {"selection/beta": float(self.beta)}

    def trained_identifiers(self) -> ItemIdentifiers:
        table = self._item_table().cpu().numpy()
        tokens = self.model.tokens
        return ItemIdentifiers(kind="token_set", n_items=self.n_items, token_sets=table,
                               info={"semantic_tokens": tokens.n_semantic, "cf_token": tokens.has_cf,
                                     "token_dim": tokens.token_dim, "beta": float(self.beta)})


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="setrec", version="4326ae04f498", family="SETRec",
            factory=lambda params, seed: SetRecRecommender(params, seed),
            accepts=SetRecRecommender.accepts,
            description="SETRec: sparse-masked token-set history, query-guided simultaneous generation, "
            "CF + semantic grounding (T5 or decoder-only)",
            params=PARAMS,
            validate=check_params,
        )
    )
