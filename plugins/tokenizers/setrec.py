"""SETRec's tokenizer ``setrec``: each item as an unordered set of continuous tokens.

Lin et al., "Order-agnostic Identifier for Large Language Model-based Generative
Recommendation" (SIGIR'25), §4.2.1. One **CF token**: the item's CF embedding (the
harness's CF-embedding service, SASRec fitted on the training data only) through a linear
projection. **N semantic tokens**: one shared autoencoder over the item's text embedding
(hidden layers 512-256-128 with ReLU, the paper's §5.4) whose latent is split into N
parts, each part projected to the token width; its reconstruction loss (eq. 4) is added to
the recommender's loss with weight alpha.

The tokenizer is *joint*: ``fit`` builds these modules (:class:`SetTokens`) and returns
the untrained tokens as a starting point; the ``setrec`` recommender trains the modules
with itself, and its trained tokens are the identifiers the harness evaluates.

Cold items (no training interaction) have no CF embedding worth the name (SASRec never saw
them as a target), so their CF embedding is set to zero and, the projection having no
bias, so is their CF token: they are scored through their semantic tokens only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.errors import ParameterError
from benchmark.params import Param

PARAMS = (
    Param("semantic_tokens", int, 4, "N: semantic tokens per item (0: CF token only, the w/o-Sem ablation)",
          minimum=0, maximum=16, low=1, high=6),
    Param("cf_token", bool, True, "give each item a CF token (false: the w/o-CF ablation)"),
    Param("text_encoder", str, "minilm", "encoder plugin for item text (SETRec: Sentence-T5)"),
    Param("hidden_dims", str, "512,256,128", "autoencoder hidden layers, comma-separated (paper: 512,256,128)"),
    Param("latent_dim", int, 32, "width of each semantic part of the autoencoder latent", minimum=1,
          choices=(16, 32, 64)),
    Param("token_dim", int, 128, "width of every token (the recommender adapts it to its model width)",
          minimum=1),
)


def hidden_dims(params: dict[str, Any]) -> list[int]:
    try:
        dims = [int(x) for x in str(params["hidden_dims"]).split(",") if x.strip()]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise ParameterError(f"tokenizer 'setrec': parameter 'hidden_dims' is {params['hidden_dims']!r}; "
                             "give positive integers separated by commas, e.g. 512,256,128")
    return dims


def check_params(params: dict[str, Any]) -> None:
    hidden_dims(params)
    if params["semantic_tokens"] == 0 and not params["cf_token"]:
        raise ParameterError("tokenizer 'setrec': semantic_tokens=0 and cf_token=false leave items without "
                             "tokens; keep the CF token or give at least one semantic token")


def _mlp(dims: list[int]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class SetTokens(torch.nn.Module):
    """Every item's token set from fixed item features, trainable end to end.

    ``forward()`` returns tokens of shape (n_items, n_tokens, token_dim): the CF token
    first (when ``has_cf``), then the ``n_semantic`` semantic tokens; ``reconstruction_loss()``
    is eq. (4), the mean squared error of the autoencoder over every item's text embedding
    (content only: cold items included).
    """

    def __init__(self, cf: np.ndarray | None, text: np.ndarray | None, n_semantic: int, latent_dim: int,
                 token_dim: int, hidden: list[int]):
        super().__init__()
        self.has_cf = cf is not None
        self.n_semantic = n_semantic if text is not None else 0
        self.token_dim = token_dim
        if cf is not None:
            self.register_buffer("cf", torch.as_tensor(cf, dtype=torch.float32))
            self.cf_projection = torch.nn.Linear(cf.shape[1], token_dim, bias=False)
        if self.n_semantic:
            self.register_buffer("text", torch.as_tensor(text, dtype=torch.float32))
            latent = n_semantic * latent_dim
            self.encoder = _mlp([text.shape[1], *hidden, latent])
            self.decoder = _mlp([latent, *reversed(hidden), text.shape[1]])
            self.latent_dim = latent_dim
            # One projection shared by the N parts: a part's meaning comes from its position only.
            self.semantic_projection = torch.nn.Linear(latent_dim, token_dim)

    @property
    def n_tokens(self) -> int:
        return int(self.has_cf) + self.n_semantic

    def forward(self) -> torch.Tensor:
        tokens = []
        if self.has_cf:
            tokens.append(self.cf_projection(self.cf)[:, None])
        if self.n_semantic:
            parts = self.encoder(self.text).reshape(len(self.text), self.n_semantic, self.latent_dim)
            tokens.append(self.semantic_projection(parts))
        return torch.cat(tokens, dim=1)

    def reconstruction_loss(self) -> torch.Tensor:
        if not self.n_semantic:
            return self.cf.new_zeros(())
        return torch.nn.functional.mse_loss(self.decoder(self.encoder(self.text)), self.text)


class SetTokenizer:
    kind = "token_set"

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        p = self.params
        cf = text = None
        info: dict[str, Any] = {"semantic_tokens": p["semantic_tokens"], "cf_token": p["cf_token"],
                                "token_dim": p["token_dim"]}
        if p["cf_token"]:
            cf = np.array(context.cf_embeddings(), np.float32)
            cold = data.train_counts == 0
            cf[cold] = 0.0
            info["cold_items_with_zero_cf_token"] = int(cold.sum())
        if p["semantic_tokens"]:
            text = np.asarray(context.text_embeddings(p["text_encoder"]), np.float32)
            info["text_encoder"] = p["text_encoder"]
        torch.manual_seed(self.seed)
        module = SetTokens(cf, text, p["semantic_tokens"], p["latent_dim"], p["token_dim"], hidden_dims(p))
        with torch.no_grad():
            start = module().numpy()
        return ItemIdentifiers(kind="token_set", n_items=data.n_items, token_sets=start, info=info, modules=module)


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="setrec", version="49d72561d1e5",
            factory=lambda params, seed: SetTokenizer(params, seed),
            kind="token_set",
            description="SETRec: a CF token + N semantic tokens from a shared autoencoder, trained "
            "jointly with the recommender",
            params=PARAMS,
            joint=True,
            validate=check_params,
        )
    )
