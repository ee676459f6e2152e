"""The RQ-VAE shared by the ``rqvae`` (TIGER), ``letter`` and ``lcrec`` tokenizers.

Semantic ids from item text by residual quantisation. This module registers nothing: the
three tokenizer plugins import it (``rqvae.py``, ``letter.py``, ``lcrec.py``), so none of
them imports another plugin.

Rajput et al., "Recommender Systems with Generative Retrieval" (TIGER, NeurIPS'23), §3.1.
The equations are numbered as in LETTER (Wang et al., CIKM'24, ``papers/letter.txt``),
which writes the same model out:

- an MLP encoder maps the item's text embedding ``s`` to a latent ``z`` (768->512->256->
  128->32 in TIGER; here the input is the text encoder's width);
- eq. (1): ``L`` levels of residual quantisation, ``c_l = argmin_i ||r_{l-1} - e_{l,i}||^2``,
  ``r_l = r_{l-1} - e_{l,c_l}``, ``r_0 = z``; the quantised embedding is ``sum_l e_{l,c_l}``;
- an MLP decoder reconstructs ``s``; the straight-through estimator carries the decoder's
  gradient past the argmin to the encoder;
- eq. (2): ``L_sem = ||s - s_hat||^2 + sum_l ||sg[r_{l-1}] - e_{l,c_l}||^2
  + mu ||r_{l-1} - sg[e_{l,c_l}]||^2`` (codebook term + ``mu`` = 0.25 commitment term).

Codebooks start from k-means (:func:`benchmark.nn.clustering.kmeans`) on the first batch's
residuals (TIGER). The ``tiny`` profile trains with AdamW at 1e-3 (LETTER's setting)
instead of TIGER's Adagrad at 0.4, which diverged here. So that codebooks do not
collapse onto a few entries, every ``dead_code_interval`` epochs the codes no item
chose during the last epoch are re-seeded from random residuals of the current batch.
Items whose codes all collide get a final level 0..n-1 (TIGER;
:func:`benchmark.code_trie.disambiguate`).

Only item content is used: every catalog item, cold ones included, gets codes from its
text; interactions are not read. :func:`train_rqvae` and :class:`Regulariser` are the
reusable core: LETTER (``letter.py``) adds loss terms through a regulariser, LC-Rec
(``lcrec.py``) changes how the last level is assigned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.cache import array_digest, artifact_path, load_array, load_json, save_array, save_json
from benchmark.code_trie import codebook_utilisation, collision_rate, disambiguate
from benchmark.components import FitContext, ItemIdentifiers, TrainingData
from benchmark.nn.clustering import kmeans
from benchmark.params import Param

PARAMS = (
    Param("text_encoder", str, "minilm", "encoder plugin for item text (TIGER: Sentence-T5, 768-d)"),
    Param("hidden_dims", str, "512,256,128",
          "comma-separated encoder widths between input and latent; the decoder mirrors them",
          choices=("512,256,128", "256,128", "128"), profiles={"tiny": "256,128", "cpu": "512,256,128"}),
    Param("latent_dim", int, 32, "latent and code-vector width", choices=(16, 32, 64), minimum=1),
    Param("levels", int, 3, "residual quantisation levels (before the collision level)", low=2, high=4,
          minimum=1),
    # tiny: 32 codes per level keep most codes in use on catalogs of a few thousand items;
    # cpu: the papers' 256.
    Param("codebook_size", int, 256, "codes per level", choices=(16, 32, 64, 128, 256),
          profiles={"tiny": 32, "cpu": 256}, minimum=2),
    Param("commitment_weight", float, 0.25, "mu in eq. (2): weight of the commitment term",
          low=0.1, high=1.0, minimum=0.0),
    # tiny: AdamW 1e-3 (LETTER's setting); Adagrad's first steps move every weight by about
    # the learning rate, and at 0.4 our RQ-VAE diverged (reconstruction loss 1.7 -> 2e7).
    Param("optimizer", str, "adagrad", "adagrad (TIGER) or adamw (LETTER)", profiles={"tiny": "adamw"},
          options=("adagrad", "adamw")),
    Param("learning_rate", float, 0.4, "learning rate (TIGER: Adagrad 0.4; LETTER: AdamW 1e-3)",
          low=1e-4, high=1.0, log=True, profiles={"tiny": 1e-3}, minimum=0.0),
    Param("batch_size", int, 1024, "items per training step", minimum=1),
    # tiny: ml-100k (1,349 items, two steps per epoch) trains in well under a minute on 2 cores;
    # cpu: 1,500 epochs of the paper-sized encoder at 256 codes, about 5.5 minutes there.
    Param("epochs", int, 20000, "training epochs over the catalog", low=100, high=2000, log=True,
          profiles={"tiny": 500, "cpu": 1500}, minimum=1),
    Param("dead_code_interval", int, 100,
          "every N epochs re-seed codes unused in the last epoch from current residuals (0 = never)",
          low=0, high=200, profiles={"tiny": 25, "cpu": 100}, minimum=0),
    Param("kmeans_iterations", int, 20, "Lloyd iterations of the k-means codebook initialisation",
          minimum=1),
)


# --------------------------------------------------------------------------- model


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class RQVAEOutput:
    """One forward pass: codes (B, L), residuals entering each level, losses of eq. (2)."""

    latent: torch.Tensor
    quantised: torch.Tensor
    reconstruction: torch.Tensor
    codes: torch.Tensor
    residuals: list[torch.Tensor]
    reconstruction_loss: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


class RQVAE(nn.Module):
    """MLP encoder, ``levels`` codebooks of ``codebook_size`` vectors, MLP decoder."""

    def __init__(self, input_dim: int, hidden_dims: list[int], latent_dim: int, levels: int, codebook_size: int):
        super().__init__()
        self.encoder = mlp([input_dim, *hidden_dims, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), input_dim])
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.randn(codebook_size, latent_dim) * 0.1) for _ in range(levels)]
        )

    @property
    def levels(self) -> int:
        return len(self.codebooks)

    def nearest(self, residual: torch.Tensor, level: int) -> torch.Tensor:
        """Eq. (1): the index of the closest code vector (squared Euclidean distance)."""
        return torch.cdist(residual, self.codebooks[level]).argmin(1)

    def quantise(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Codes (B, L), the sum of chosen code vectors, and the residual entering each level."""
        residual, quantised = latent, torch.zeros_like(latent)
        codes, residuals = [], []
        for level in range(self.levels):
            residuals.append(residual)
            code = self.nearest(residual.detach(), level)
            vector = self.codebooks[level][code]
            codes.append(code)
            quantised = quantised + vector
            residual = residual - vector
        return torch.stack(codes, 1), quantised, residuals

    def forward(self, embeddings: torch.Tensor, commitment_weight: float = 0.25) -> RQVAEOutput:
        latent = self.encoder(embeddings)
        codes, quantised, residuals = self.quantise(latent)
        codebook = latent.new_zeros(())
        commitment = latent.new_zeros(())
        for level, residual in enumerate(residuals):
            vector = self.codebooks[level][codes[:, level]]
            codebook = codebook + ((residual.detach() - vector) ** 2).sum(-1).mean()
            commitment = commitment + ((residual - vector.detach()) ** 2).sum(-1).mean()
        # Straight-through: the decoder sees the quantised vector, the encoder gets its gradient.
        straight_through = latent + (quantised - latent).detach()
        reconstruction = self.decoder(straight_through)
        return RQVAEOutput(
            latent=latent,
            quantised=straight_through,
            reconstruction=reconstruction,
            codes=codes,
            residuals=residuals,
            reconstruction_loss=((embeddings - reconstruction) ** 2).sum(-1).mean(),
            codebook_loss=codebook,
            commitment_loss=commitment_weight * commitment,
        )

    @torch.no_grad()
    def init_codebooks(self, embeddings: torch.Tensor, iterations: int, rng: np.random.Generator) -> None:
        """k-means of each level's residuals on one batch (TIGER), level by level."""
        residual = self.encoder(embeddings)
        for level in range(self.levels):
            clustering = kmeans(residual.numpy(), len(self.codebooks[level]), rng, iterations)
            self.codebooks[level].copy_(torch.as_tensor(clustering.centroids, dtype=residual.dtype))
            residual = residual - self.codebooks[level][self.nearest(residual, level)]

    @torch.no_grad()
    def encode(self, embeddings: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Codes (n, L) of every row and the residuals entering each level (eval mode)."""
        codes, residuals = [], []
        for start in range(0, len(embeddings), chunk):
            c, _, r = self.quantise(self.encoder(embeddings[start : start + chunk]))
            codes.append(c)
            residuals.append(r)
        return torch.cat(codes), [torch.cat([r[level] for r in residuals]) for level in range(self.levels)]


class Regulariser(nn.Module):
    """Extra loss terms added to eq. (2) during training (LETTER's collaborative and diversity terms).

    Its own parameters (a projection head, say) are trained with the RQ-VAE.
    """

    def start_epoch(self, model: RQVAE, epoch: int) -> None:
        """Called before each epoch (e.g. to re-cluster the codebooks)."""

    def forward(self, items: torch.Tensor, output: RQVAEOutput, model: RQVAE) -> dict[str, torch.Tensor]:
        """Named, already weighted loss terms for the batch of item indices ``items``."""
        return {}


@dataclass
class TrainedRQVAE:
    model: RQVAE
    history: dict[str, list[float]]


def train_rqvae(
    embeddings: np.ndarray,
    params: dict[str, Any],
    seed: int,
    regulariser: Regulariser | None = None,
    progress: bool = False,
    desc: str = "rqvae",
) -> TrainedRQVAE:
    """Train an RQ-VAE on ``embeddings`` (n_items, dim) with eq. (2) plus ``regulariser``'s terms.

    Seeded: the same inputs, parameters and seed give the same model. ``history`` holds the
    per-epoch mean of every loss term and each level's share of codes used in the epoch.
    """
    threads = torch.get_num_threads()
    # The matrices are small (a batch x a few hundred): one thread is faster than several,
    # and on a CPU shared with other jobs several threads are up to 30x slower.
    torch.set_num_threads(1)
    try:
        return _train(embeddings, params, seed, regulariser or Regulariser(), progress, desc)
    finally:
        torch.set_num_threads(threads)


def _train(
    embeddings: np.ndarray, params: dict[str, Any], seed: int, regulariser: Regulariser, progress: bool, desc: str
) -> TrainedRQVAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        data = torch.as_tensor(embeddings, dtype=torch.float32)
        hidden = [int(w) for w in str(params["hidden_dims"]).split(",") if w.strip()]
        model = RQVAE(data.shape[1], hidden, params["latent_dim"], params["levels"], params["codebook_size"])
        trainable = list(model.parameters()) + list(regulariser.parameters())
        optimizers = {"adagrad": torch.optim.Adagrad, "adamw": torch.optim.AdamW}
        optimizer = optimizers[params["optimizer"]](trainable, lr=params["learning_rate"])
        batch_size = min(params["batch_size"], len(data))
        order = torch.randperm(len(data), generator=generator)
        model.init_codebooks(data[order[:batch_size]], params["kmeans_iterations"], np.random.default_rng(seed))
        history: dict[str, list[float]] = {}
        interval = params["dead_code_interval"]
        epochs = tqdm(range(params["epochs"]), desc=desc, unit="epoch", disable=not progress, leave=False)
        for epoch in epochs:
            model.train()
            regulariser.start_epoch(model, epoch)
            used = torch.zeros(model.levels, params["codebook_size"], dtype=torch.bool)
            sums: dict[str, float] = {}
            order = torch.randperm(len(data), generator=generator)
            steps = 0
            for start in range(0, len(data), batch_size):
                items = order[start : start + batch_size]
                output = model(data[items], params["commitment_weight"])
                terms = {
                    "reconstruction": output.reconstruction_loss,
                    "codebook": output.codebook_loss,
                    "commitment": output.commitment_loss,
                    **regulariser(items, output, model),
                }
                loss = sum(terms.values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                for level in range(model.levels):
                    used[level, output.codes[:, level]] = True
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                steps += 1
            for name, value in sums.items():
                history.setdefault(name, []).append(value / steps)
            for level in range(model.levels):
                history.setdefault(f"used_l{level + 1}", []).append(float(used[level].float().mean()))
            epochs.set_postfix(recon=f"{history['reconstruction'][-1]:.4f}")
            if interval and (epoch + 1) % interval == 0 and epoch + 1 < params["epochs"]:
                reseed_dead_codes(model, output.residuals, used, generator)
        model.eval()
        return TrainedRQVAE(model, history)


@torch.no_grad()
def reseed_dead_codes(
    model: RQVAE, residuals: list[torch.Tensor], used: torch.Tensor, generator: torch.Generator
) -> None:
    """Move codes no item chose to random residuals of the batch, so they get chosen again."""
    for level, residual in enumerate(residuals):
        dead = torch.nonzero(~used[level]).flatten()
        if len(dead):
            pick = torch.randint(len(residual), (len(dead),), generator=generator)
            model.codebooks[level][dead] = residual[pick].detach()


# --------------------------------------------------------------------------- identifiers


def cached_codes(
    cache_dir: str | Path, kind: str, key: list[Any], compute: Callable[[], tuple[np.ndarray, dict]],
    rows: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Codes (``.npy``) and their info (``.json``) from ``<cache>/<kind>/`` by a hash of ``key``, computed once.

    A cached entry that is not a 2-D array of non-negative integer codes (``rows`` of them,
    one per item, when given), or whose info is not a JSON object, is deleted with one
    warning line and computed again.
    """
    path = artifact_path(cache_dir, kind, *key)
    info_path = path.with_suffix(".json")

    def check(codes: np.ndarray) -> str | None:
        fits = (codes.ndim == 2 and codes.dtype.kind in "iu" and (rows is None or len(codes) == rows)
                and not (codes.size and codes.min() < 0))
        return None if fits else f"({rows if rows is not None else 'n_items'}, levels) non-negative integer codes"

    def info_object(value: Any) -> dict:
        if not isinstance(value, dict):
            raise TypeError(f"info is a JSON {type(value).__name__}, not an object")
        return value

    codes, info = load_array(path, check), load_json(info_path, info_object)
    if codes is not None and info is not None:
        return codes, info
    codes, info = compute()
    save_json(info_path, info)
    save_array(path, codes)
    return codes, info


def training_info(trained: TrainedRQVAE) -> dict[str, Any]:
    """First and last epoch of each loss term (the reconstruction history in short)."""
    return {f"{name}_loss": {"first": values[0], "last": values[-1]}
            for name, values in trained.history.items() if not name.startswith("used_")}


def code_identifiers(codes: np.ndarray, codebook_size: int, info: dict[str, Any]) -> ItemIdentifiers:
    """ItemIdentifiers from semantic codes (n_items, L): a collision level is appended."""
    full, colliding = disambiguate(codes)
    info = {
        **info,
        "semantic_levels": int(codes.shape[1]),
        "collisions_before": colliding,
        "collision_rate_before": collision_rate(codes),
        "collisions_after": int(round(collision_rate(full) * len(full))),
        "utilisation": codebook_utilisation(codes, (codebook_size,) * codes.shape[1]),
    }
    vocab = (codebook_size,) * codes.shape[1] + (int(full[:, -1].max()) + 1 if len(full) else 1,)
    return ItemIdentifiers(kind="codes", n_items=len(codes), codes=full, vocab_sizes=vocab, info=info)


class RQVAETokenizer:
    """Content-only semantic ids: text embedding -> RQ-VAE codes -> collision level.

    LETTER and LC-Rec subclass it: same parameters, text embeddings and seeding.
    """

    kind = "codes"

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def item_embeddings(self, data: TrainingData, context: FitContext) -> np.ndarray:
        """Text embeddings of every catalog item (the harness's cached text-embedding service)."""
        return context.text_embeddings(self.params["text_encoder"])

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        embeddings = self.item_embeddings(data, context)

        def compute() -> tuple[np.ndarray, dict]:
            trained = train_rqvae(embeddings, self.params, self.seed, progress=context.progress)
            codes, _ = trained.model.encode(torch.as_tensor(embeddings, dtype=torch.float32))
            return codes.numpy(), training_info(trained)

        codes, info = cached_codes(context.cache_dir, "rqvae", [array_digest(embeddings), self.params, self.seed],
                                   compute, rows=data.n_items)
        return code_identifiers(codes, self.params["codebook_size"], info)

