"""LETTER's learnable tokenizer ``letter``: RQ-VAE + collaborative + diversity regularisation.

Wang et al., "Learnable Item Tokenization for Generative Recommendation" (LETTER, CIKM'24),
§4.2, equations numbered as in ``papers/letter.txt``:

- eq. (1)-(2) semantic regularisation: the RQ-VAE of ``benchmark/nn/rqvae.py`` (TIGER), trained on
  the text embedding of every item;
- eq. (3) collaborative regularisation: an InfoNCE loss aligning each item's quantised
  embedding ``z_hat`` (through a learnt linear projection to the CF width) with its CF
  embedding ``h`` (SASRec item embeddings, the harness's CF-embedding service, ``context.cf_embeddings()``),
  the other items of the batch being negatives. We use cosine similarity over a
  ``temperature`` (eq. (3) writes a raw inner product) and the log of the softmax (the
  InfoNCE form of the contrastive loss eq. (3) describes);
- eq. (4) diversity regularisation: every ``cluster_interval`` epochs each codebook's code
  vectors are split into ``clusters`` groups of equal size by constrained k-means
  (:func:`benchmark.nn.clustering.kmeans` with ``balanced=True``); for
  each item and level, its chosen code ``e_c`` is pulled towards a random other code of
  its cluster ``e_+`` and pushed from every other code of the codebook:
  ``-log exp(<e_c, e_+>) / sum_{j != c} exp(<e_c, e_j>)``;
- eq. (5): ``L = L_sem + alpha L_CF + beta L_div``.

Cold items (no training interaction) have no trustworthy CF embedding: the CF term is
computed over the warm items of each batch only (negatives included), and cold items take
part through the semantic (reconstruction and quantisation) and diversity terms only;
their codes still come from their text, like every item's. The CF embeddings are fitted
on the training interactions only, so nothing of the validation or test cases leaks in.
LETTER's ranking-guided generation loss (eq. (6)) belongs to the recommender, not here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark import hookimpl
from benchmark.cache import array_digest
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.nn.clustering import kmeans
from benchmark.nn.rqvae import PARAMS as RQVAE_PARAMS
from benchmark.nn.rqvae import (
    RQVAE,
    Regulariser,
    RQVAEOutput,
    RQVAETokenizer,
    cached_codes,
    code_identifiers,
    train_rqvae,
    training_info,
)
from benchmark.params import Param

# LETTER's RQ-VAE (§5.4.1): 4 levels of 256 codes, AdamW 1e-3; tiny keeps rqvae's
# settings so that the two are compared on equal terms.
LETTER_DEFAULTS = {
    "levels": {"default": 4, "profiles": {"tiny": 3}},
    "optimizer": {"default": "adamw"},
    "learning_rate": {"default": 1e-3},
}

PARAMS = tuple(replace(p, **LETTER_DEFAULTS.get(p.name, {})) for p in RQVAE_PARAMS) + (
    Param("alpha", float, 0.02, "weight of the collaborative term, eq. (5) (paper: best 0.02)",
          low=1e-3, high=0.1, log=True, minimum=0.0),
    Param("beta", float, 1e-4, "weight of the diversity term, eq. (5) (paper: best 1e-4)",
          low=1e-5, high=1e-2, log=True, minimum=0.0),
    Param("clusters", int, 10, "K: clusters of constrained k-means per codebook (paper: 10)", low=5, high=20,
          minimum=1),
    Param("temperature", float, 0.1, "softmax temperature of the cosine InfoNCE of eq. (3)",
          low=0.05, high=1.0, log=True, minimum=0.01),
    Param("cluster_interval", int, 10, "epochs between re-clusterings of the codebooks", low=1, high=100,
          minimum=1),
)


class LetterRegulariser(Regulariser):
    """Eq. (3) on the batch's warm items and eq. (4) on every item, weighted per eq. (5)."""

    def __init__(self, cf: np.ndarray, warm: np.ndarray, params: dict[str, Any], seed: int):
        super().__init__()
        warm_items = np.flatnonzero(warm)
        # Only warm rows are read: cold rows may hold anything (untrained, even NaN).
        self.register_buffer("cf", torch.as_tensor(cf[warm_items], dtype=torch.float32))
        row_of = np.full(len(warm), -1, np.int64)
        row_of[warm_items] = np.arange(len(warm_items))
        self.register_buffer("row_of", torch.as_tensor(row_of))
        with torch.random.fork_rng(devices=[]):
            # Seeded here: the global random state differs between fits.
            torch.manual_seed(seed)
            self.projection = torch.nn.Linear(params["latent_dim"], cf.shape[1], bias=False)
        self.alpha, self.beta = params["alpha"], params["beta"]
        self.temperature = params["temperature"]
        self.clusters, self.interval = params["clusters"], params["cluster_interval"]
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.rng = np.random.default_rng(seed + 1)
        self.labels: list[torch.Tensor] = []

    def start_epoch(self, model: RQVAE, epoch: int) -> None:
        if self.beta and epoch % self.interval == 0:
            self.labels = [torch.as_tensor(kmeans(book.detach().numpy(), self.clusters, self.rng, 20,
                                                  balanced=True).labels)
                           for book in model.codebooks]

    def collaborative_loss(self, items: torch.Tensor, output: RQVAEOutput) -> torch.Tensor:
        """Eq. (3): InfoNCE between projected quantised embeddings and CF embeddings, warm items only."""
        rows = self.row_of[items]
        warm = rows >= 0
        if int(warm.sum()) < 2:
            return output.quantised.new_zeros(())
        # The straight-through quantised vector: its gradient reaches the encoder, which
        # decides the codes.
        quantised = F.normalize(self.projection(output.quantised[warm]), dim=-1)
        cf = F.normalize(self.cf[rows[warm]], dim=-1)
        logits = quantised @ cf.T / self.temperature
        return F.cross_entropy(logits, torch.arange(len(logits)))

    def diversity_loss(self, output: RQVAEOutput, model: RQVAE) -> torch.Tensor:
        """Eq. (4): pull each chosen code to a random code of its cluster, push it from the others."""
        total = output.quantised.new_zeros(())
        for level, book in enumerate(model.codebooks):
            labels = self.labels[level]
            chosen = output.codes[:, level]
            same = labels[chosen][:, None] == labels[None, :]
            same[torch.arange(len(chosen)), chosen] = False
            has_partner = same.any(1)
            if not bool(has_partner.any()):
                continue
            # A random other code of the same cluster: the largest random key among partners.
            keys = torch.rand(same.shape, generator=self.generator).masked_fill(~same, -1.0)
            positive = keys.argmax(1)
            logits = book[chosen] @ book.T
            logits[torch.arange(len(chosen)), chosen] = -torch.inf
            loss = torch.logsumexp(logits, 1) - logits.gather(1, positive[:, None]).squeeze(1)
            total = total + loss[has_partner].mean()
        return total

    def forward(self, items: torch.Tensor, output: RQVAEOutput, model: RQVAE) -> dict[str, torch.Tensor]:
        terms = {"collaborative": self.alpha * self.collaborative_loss(items, output)}
        if self.beta:
            terms["diversity"] = self.beta * self.diversity_loss(output, model)
        return terms


class LetterTokenizer(RQVAETokenizer):
    """RQ-VAE codes regularised towards CF neighbourhoods and a diverse codebook."""

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        embeddings = self.item_embeddings(data, context)
        cf = context.cf_embeddings()
        warm = data.train_counts > 0

        def compute() -> tuple[np.ndarray, dict]:
            regulariser = LetterRegulariser(cf, warm, self.params, self.seed)
            trained = train_rqvae(embeddings, self.params, self.seed, regulariser, context.progress, "letter")
            codes, _ = trained.model.encode(torch.as_tensor(embeddings, dtype=torch.float32))
            return codes.numpy(), {**training_info(trained), "warm_items": int(warm.sum())}

        key = [array_digest(embeddings), array_digest(cf[warm]), array_digest(warm), self.params, self.seed]
        codes, info = cached_codes(context.cache_dir, "letter", key, compute, rows=data.n_items)
        return code_identifiers(codes, self.params["codebook_size"], info)


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="letter", version="002c6e92b394",
            factory=lambda params, seed: LetterTokenizer(params, seed),
            kind="codes",
            description="LETTER: RQ-VAE + CF alignment (warm items) + codebook diversity (+ collision level)",
            params=PARAMS,
        )
    )
