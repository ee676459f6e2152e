"""LC-Rec's tokenizer ``lcrec``: RQ-VAE whose last level is a uniform semantic mapping.

Zheng et al., "Adapting Large Language Models by Integrating Collaborative Semantics for
Recommendation" (LC-Rec, ICDE'24), §III-A. An RQ-VAE of 4 levels (``benchmark/nn/rqvae.py``,
eq. (1)-(2) of ``papers/letter.txt``) is trained on item text embeddings. The first three
levels are its nearest codes. The last level is assigned by balanced optimal transport instead of
nearest-code: Sinkhorn-Knopp (Cuturi, NeurIPS'13) on the distances between every item's
last residual and the last codebook, with uniform marginals (each item one unit, each
code ``n_items / K`` units), gives a transport plan that spreads items evenly over codes.
Inside each group of items sharing the first three codes, the last codes are then
chosen by a linear assignment maximising the plan, so no two items share an identifier.

Simplifications: LC-Rec also applies Sinkhorn to the last level while training the
RQ-VAE; here it is applied once, at assignment. A prefix group larger than the codebook
cannot be separated by one level: such groups (rare; counted in ``info``) get an extra
collision level like TIGER's. Only item content is used, so cold items get codes too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from benchmark import hookimpl
from benchmark.cache import array_digest
from benchmark.code_trie import codebook_utilisation, collision_rate, disambiguate
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.nn.rqvae import PARAMS as RQVAE_PARAMS
from benchmark.nn.rqvae import RQVAETokenizer, cached_codes, train_rqvae, training_info
from benchmark.params import Param

PARAMS = tuple(replace(p, default=4, profiles={}, low=3, high=5) if p.name == "levels" else p
               for p in RQVAE_PARAMS) + (
    Param("sinkhorn_epsilon", float, 0.05,
          "entropic regularisation of Sinkhorn-Knopp on standardised distances (smaller: closer to hard OT)",
          low=0.01, high=0.5, log=True, minimum=1e-3),
    Param("sinkhorn_iterations", int, 200, "Sinkhorn-Knopp iterations", minimum=1),
)


def sinkhorn(distances: np.ndarray, epsilon: float, iterations: int) -> np.ndarray:
    """Log of the entropic optimal transport plan between rows and columns, uniform marginals.

    ``distances`` (n, K) is standardised first so ``epsilon`` means the same on any scale.
    Log-domain updates (alternating row and column normalisation of ``-D / epsilon``) stay
    finite for small ``epsilon``. Rows of the returned plan sum to 1/n, columns to 1/K.
    Deterministic: no random state is involved.
    """
    d = np.asarray(distances, np.float64)
    d = (d - d.mean()) / max(d.std(), 1e-12)
    n, k = d.shape
    log_plan = -d / epsilon
    for _ in range(iterations):
        log_plan = log_plan - logsumexp(log_plan, axis=1, keepdims=True) - np.log(n)
        log_plan = log_plan - logsumexp(log_plan, axis=0, keepdims=True) - np.log(k)
    return log_plan


def assign_last_level(prefixes: np.ndarray, log_plan: np.ndarray) -> tuple[np.ndarray, int]:
    """Last codes (n,) distinct within each prefix group, maximising the plan; overflowing groups."""
    n, k = log_plan.shape
    last = log_plan.argmax(1)
    if prefixes.shape[1]:
        _, group = np.unique(prefixes, axis=0, return_inverse=True)
        group = group.reshape(-1)
    else:
        group = np.zeros(n, np.int64)
    overflow = 0
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if len(members) == 1:
            continue
        if len(members) > k:
            overflow += 1
            continue
        rows, cols = linear_sum_assignment(-log_plan[members])
        last[members[rows]] = cols
    return last, overflow


def uniform_semantic_codes(
    residuals: torch.Tensor, codebook: torch.Tensor, prefixes: np.ndarray, epsilon: float, iterations: int
) -> tuple[np.ndarray, int]:
    """LC-Rec's last level: Sinkhorn plan over residual-to-code distances, then per-prefix assignment."""
    log_plan = sinkhorn((torch.cdist(residuals, codebook) ** 2).numpy(), epsilon, iterations)
    return assign_last_level(prefixes, log_plan)


class LCRecTokenizer(RQVAETokenizer):
    """RQ-VAE codes with a Sinkhorn-balanced, collision-free last level."""

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        embeddings = self.item_embeddings(data, context)

        def compute() -> tuple[np.ndarray, dict]:
            trained = train_rqvae(embeddings, self.params, self.seed, progress=context.progress, desc="lcrec")
            model = trained.model
            nearest, residuals = model.encode(torch.as_tensor(embeddings, dtype=torch.float32))
            prefixes = nearest[:, :-1].numpy()
            last, overflow = uniform_semantic_codes(residuals[-1], model.codebooks[-1].detach(), prefixes,
                                                    self.params["sinkhorn_epsilon"],
                                                    self.params["sinkhorn_iterations"])
            info = {**training_info(trained), "collision_rate_nearest": collision_rate(nearest.numpy()),
                    "overflowing_groups": overflow}
            return np.column_stack([prefixes, last]), info

        key = [array_digest(embeddings), self.params, self.seed]
        codes, info = cached_codes(context.cache_dir, "lcrec", key, compute, rows=data.n_items)
        return lcrec_identifiers(codes, self.params["codebook_size"], info)


def lcrec_identifiers(codes: np.ndarray, codebook_size: int, info: dict[str, Any]) -> ItemIdentifiers:
    """Identifiers from the 4-level codes; a collision level only if some prefix group overflowed."""
    rate = collision_rate(codes)
    info = {**info, "semantic_levels": int(codes.shape[1]), "collision_rate_before": rate,
            "collisions_before": int(round(rate * len(codes))),
            "utilisation": codebook_utilisation(codes, (codebook_size,) * codes.shape[1])}
    vocab = (codebook_size,) * codes.shape[1]
    if rate > 0:
        codes, _ = disambiguate(codes)
        vocab = vocab + (int(codes[:, -1].max()) + 1,)
    info["collisions_after"] = int(round(collision_rate(codes) * len(codes)))
    return ItemIdentifiers(kind="codes", n_items=len(codes), codes=codes, vocab_sizes=vocab, info=info)


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="lcrec", version="1be5dbe698a8",
            factory=lambda params, seed: LCRecTokenizer(params, seed),
            kind="codes",
            description="LC-Rec: 4-level RQ-VAE, last level balanced by Sinkhorn-Knopp, collision-free",
            params=PARAMS,
        )
    )
