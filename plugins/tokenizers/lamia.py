"""LAMIA's tokenizer ``lamia``: a multi-aspect item palette learnt by a causal LM, then clustered.

Liu et al., "Learning Multi-Aspect Item Palette: A Semantic Tokenization Framework for
Generative Recommendation" (arXiv 2409.07276; ``papers/lamia.txt`` §4.2). No public code
exists; this follows the paper.

*Input blocks* (§4.2.1), one sequence per (item, task):
``[content] [LaP_1..LaP_L] [LdP_1..LdP_L] [task token, answer, end]`` where the content
block is ``"field: value."`` for the ``content_fields``, the LaP are L learnable palette
tokens, the LdP L placeholder tokens, and each task reconstructs a content field or
predicts one left out of the content (``task_fields``; one new task token each).

*Hierarchical attention mask* (:func:`block_mask`): causal inside every block; the palette
block reads the whole content block; the task block reads the whole placeholder block;
every other pair of blocks is blocked (the task never sees the content, only the palette).

*Dual forward pass*: the first pass reads the last-layer states at the LaP positions
(the item palette, L x d); the second pass runs the sequence again with the LdP input
embeddings replaced by that palette, and the answer tokens' cross-entropy trains both
(``L_gen``). The palette is pulled apart by squared-hinge cosine losses (eq. 7-8):
intra-palette (the L vectors of one item, margin ``margin_intra``) and inter-palette (the
same position of different items in the batch, margin ``margin_inter``), weight
``contrastive_weight`` (gamma). Batches hold distinct items, each with all its tasks.
Both hinge terms are averaged over their pairs rather than summed (eq. 7-8 sum), so gamma
keeps its meaning at any batch size.

*Quantisation* (§4.2.3): every item's palette (one pass, no task block needed: the mask
keeps the palette blind to it); per palette position independently, PCA to ``pca_dims``
then k-means into ``codebook_size`` clusters. An index token (an extra code level, 0 for
the first item of each code combination) tells apart items that still share all L codes.

The backbone is any causal LM (``model_path``, LoRA via peft, e.g. OPT-350M in the paper,
Gemma-3-270M in the ``small`` profile) or, in ``tiny``, a random-init decoder with the
offline MiniLM tokenizer (:mod:`benchmark.nn.causal_lm`). Only item content is
read, so cold items get codes like any other, and the codes are cached by content,
parameters and seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark import hookimpl
from benchmark.cache import content_hash
from benchmark.components import FitContext, ItemIdentifiers, TokenizerSpec, TrainingData
from benchmark.errors import ParameterError, PluginError
from benchmark.nn.causal_lm import base_model, causal_lm, load_tokenizer, special_ids
from benchmark.nn.clustering import kmeans
from benchmark.nn.engine import adopt_leftover, engine_param, pick_device, train
from benchmark.nn.model_paths import check_model_path
from benchmark.nn.rqvae import cached_codes, code_identifiers
from benchmark.nn.sequences import TRANSFORMER_PARAMS, batches
from benchmark.params import Param

OWNER = "tokenizer 'lamia'"
PAD, CONTENT, LAP, LDP, TASK = -1, 0, 1, 2, 3

PARAMS = (
    Param("model_path", str, "", "causal LM for the palette (local folder or hub name) or gemma3-270m "
          "(shipped, extra 'small'); empty: random init with the MiniLM tokenizer"),
    Param("lora_rank", int, 128, "LoRA rank for a pretrained model_path (paper: 128); 0: full fine-tuning",
          profiles={"tiny": 0}, minimum=0),
    Param("layers", int, 4, "decoder layers (random init)", profiles={"tiny": 2}, minimum=1),
    *TRANSFORMER_PARAMS,
    Param("palette_size", int, 4, "palette tokens L = semantic code levels (paper: 4)", minimum=1, low=2, high=6),
    Param("content_fields", str, "", "item text fields in the content block, comma-separated (empty: all)"),
    Param("task_fields", str, "", "fields to reconstruct (in the content) or predict (not in it), "
          "comma-separated (empty: all)"),
    Param("max_content_tokens", int, 64, "tokens of the content block", minimum=1),
    Param("max_answer_tokens", int, 24, "tokens of a task's answer", minimum=1),
    Param("margin_intra", float, 0.1, "alpha_intra: cosine margin between one item's palette vectors",
          minimum=-1.0, maximum=1.0),
    Param("margin_inter", float, 0.25, "alpha_inter: cosine margin between items at one palette position",
          minimum=-1.0, maximum=1.0),
    Param("contrastive_weight", float, 0.1, "gamma: weight of the intra + inter palette losses",
          minimum=0.0, low=0.0, high=1.0),
    Param("pca_dims", int, 64, "PCA components per palette position before k-means", minimum=1),
    Param("codebook_size", int, 256, "k-means clusters per palette position", profiles={"tiny": 32, "cpu": 256},
          minimum=2, choices=(16, 32, 64, 128, 256)),
    Param("kmeans_iterations", int, 50, "Lloyd iterations of each k-means", minimum=1),
    engine_param("learning_rate", default=1e-4, help="peak AdamW learning rate (paper: 1e-4)",
                 profiles={"tiny": 2e-3}, low=1e-4, high=1e-2),
    engine_param("weight_decay", low=None, high=None, log=False),
    engine_param("batch_size", default=128, help="items per step, each with all its tasks (paper: 128)",
                 profiles={"tiny": 64}, minimum=2),
    engine_param("epochs", default=10, help="passes over the catalog", profiles={"tiny": 6, "cpu": 10}),
    engine_param("device"),
)


def check_params(params: dict[str, Any]) -> None:
    check_model_path(params["model_path"], OWNER, "causal")


def block_mask(blocks: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T, T) attention mask of rows whose positions carry block ids (CONTENT,
    LAP, LDP, TASK; PAD for padding): query q may read key k when both are in one block and
    k <= q, or q is a palette token and k content, or q is a task token and k a placeholder.
    A padding query reads itself only (no empty softmax row)."""
    q, k = blocks[:, :, None], blocks[:, None, :]
    length = blocks.shape[1]
    order = torch.arange(length, device=blocks.device)
    causal = (order[None, :] <= order[:, None])[None]
    allowed = ((q == k) & causal) | ((q == LAP) & (k == CONTENT)) | ((q == TASK) & (k == LDP))
    allowed &= k != PAD
    return allowed | torch.eye(length, dtype=torch.bool, device=blocks.device)[None]


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean (B, Q, K) mask to the additive (B, 1, Q, K) form attention kernels take."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)[:, None]


def hinge_losses(palette: torch.Tensor, margin_intra: float, margin_inter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(intra, inter): mean squared hinge of cosine similarities above the margins, between
    the L vectors of each item and between different items at each position."""
    unit = torch.nn.functional.normalize(palette, dim=-1)  # (B, L, d)
    n, size = unit.shape[:2]
    within = unit @ unit.transpose(1, 2)  # (B, L, L)
    off = ~torch.eye(size, dtype=torch.bool, device=unit.device)
    intra = (within[:, off] - margin_intra).clamp(min=0).pow(2).mean() if size > 1 else unit.sum() * 0
    across = unit.transpose(0, 1) @ unit.permute(1, 2, 0)  # (L, B, B)
    others = ~torch.eye(n, dtype=torch.bool, device=unit.device)
    inter = (across[:, others] - margin_inter).clamp(min=0).pow(2).mean() if n > 1 else unit.sum() * 0
    return intra, inter


def pca(points: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` principal components' coordinates of ``points`` (n, d)."""
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:min(dims, vt.shape[0])].T


def _fields(value: str, known: tuple[str, ...], name: str) -> list[str]:
    fields = [f.strip() for f in value.split(",") if f.strip()] or list(known)
    unknown = [f for f in fields if f not in known]
    if unknown or not fields:
        raise ParameterError(f"{OWNER}: parameter {name!r} names {', '.join(unknown) or 'no field'}; this dataset's "
                             f"item text fields are: {', '.join(known) or 'none'}")
    return fields


class Palette:
    """The palette LLM: token layout, block rows, the dual forward pass and its losses."""

    def __init__(self, params: dict[str, Any], data: TrainingData, device: torch.device):
        p = self.params = params
        known = tuple(data.catalog.text_fields)
        self.content_fields = _fields(p["content_fields"], known, "content_fields")
        self.task_fields = _fields(p["task_fields"], known, "task_fields")
        tokenizer = load_tokenizer(p, OWNER)
        self.pad, self.eos = special_ids(tokenizer, OWNER)
        size, base = p["palette_size"], len(tokenizer)
        self.lap = list(range(base, base + size))
        self.ldp = list(range(base + size, base + 2 * size))
        self.task_tokens = list(range(base + 2 * size, base + 2 * size + len(self.task_fields)))
        words = lambda text: list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []  # noqa: E731
        self.content = [words(" ".join(f"{f}: {fields.get(f, '')}." for f in self.content_fields))
                        [:p["max_content_tokens"]] for fields in data.catalog.item_text]
        self.answers = [[words(fields.get(f, ""))[:p["max_answer_tokens"]] + [self.eos] for f in self.task_fields]
                        for fields in data.catalog.item_text]
        self.device = device
        self.model = causal_lm(p, base + 2 * size + len(self.task_fields), self.pad, self.eos, OWNER).to(device)

    def rows(self, items: list[int], tasks: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, blocks) of ``[content][LaP][LdP][task]`` per (item, task), right-padded; with
        ``tasks`` None the rows stop after the palette block."""
        rows, blocks = [], []
        for row, item in enumerate(items):
            ids = self.content[item] + self.lap
            block = [CONTENT] * len(self.content[item]) + [LAP] * len(self.lap)
            if tasks is not None:
                task = [self.task_tokens[tasks[row]]] + self.answers[item][tasks[row]]
                ids += self.ldp + task
                block += [LDP] * len(self.ldp) + [TASK] * len(task)
            rows.append(ids)
            blocks.append(block)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        block_ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        for i, (r, b) in enumerate(zip(rows, blocks)):
            ids[i, :len(r)] = torch.as_tensor(r)
            block_ids[i, :len(b)] = torch.as_tensor(b)
        return ids.to(self.device), block_ids.to(self.device)

    def forward(self, ids: torch.Tensor, blocks: torch.Tensor, palette: torch.Tensor | None = None) -> torch.Tensor:
        """Last-layer states under :func:`block_mask`; ``palette`` (B, L, d) replaces the LdP inputs."""
        model = base_model(self.model)
        embedded = model.get_input_embeddings()(ids)
        if palette is not None:
            slots = (blocks == LDP)[..., None].expand_as(embedded)
            embedded = embedded.masked_scatter(slots, palette.to(embedded.dtype))
        positions = torch.arange(ids.shape[1], device=ids.device).expand(len(ids), -1)
        return model.get_decoder()(inputs_embeds=embedded, attention_mask=additive(block_mask(blocks), embedded.dtype),
                                   position_ids=positions, use_cache=False).last_hidden_state

    def palettes(self, items: list[int]) -> torch.Tensor:
        """The item palettes (B, L, d): last-layer states at the palette tokens."""
        ids, blocks = self.rows(items, None)
        hidden = self.forward(ids, blocks)
        return hidden[blocks == LAP].view(len(items), len(self.lap), -1)

    def losses(self, items: list[int]) -> dict[str, torch.Tensor]:
        """``gen`` (answer cross-entropy after the dual forward pass), ``intra``, ``inter``."""
        p = self.params
        palette = self.palettes(items)
        tasks = len(self.task_fields)
        ids, blocks = self.rows([i for i in items for _ in range(tasks)], list(range(tasks)) * len(items))
        hidden = self.forward(ids, blocks, palette.repeat_interleave(tasks, 0))
        # A task-block position predicts the next token when that token is in the task block too.
        predicts = (blocks[:, :-1] == TASK) & (blocks[:, 1:] == TASK)
        logits = base_model(self.model).get_output_embeddings()(hidden[:, :-1][predicts]).float()
        gen = torch.nn.functional.cross_entropy(logits, ids[:, 1:][predicts])
        intra, inter = hinge_losses(palette.float(), p["margin_intra"], p["margin_inter"])
        return {"gen": gen, "intra": intra, "inter": inter}


class LamiaTokenizer:
    kind = "codes"

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers:
        if not data.catalog.text_fields:
            raise PluginError(f"{OWNER} learns palettes from item text; dataset {data.catalog.name!r} has no text "
                              "fields")
        key = [content_hash(data.catalog.item_text), self.params, self.seed]
        codes, info = cached_codes(context.cache_dir, "lamia", key, lambda: self._codes(data, context),
                                   rows=data.n_items)
        # Codes cached by an earlier process whose run then died: its palette checkpoint goes with this row.
        adopt_leftover(context, "lamia palette")
        return code_identifiers(codes, self.params["codebook_size"], info)

    def train(self, data: TrainingData, context: FitContext) -> tuple[Palette, dict[str, Any]]:
        p = self.params
        torch.manual_seed(self.seed)
        palette = Palette(p, data, pick_device(p["device"], context.device, OWNER))

        def epoch_batches(epoch: int):
            # One generator for the whole fit, replayed up to this epoch (a resumed fit sees the same order).
            rng = np.random.default_rng([self.seed, 7])
            for _ in range(epoch + 1):
                order = rng.permutation(data.n_items)
            return batches(order.tolist(), p["batch_size"])

        def loss_of(items: list[int]) -> dict[str, torch.Tensor]:
            parts = palette.losses(items)
            return {"loss": parts["gen"] + p["contrastive_weight"] * (parts["intra"] + parts["inter"]), **parts}

        result = train(palette.model, p, context, "lamia palette", data.n_items, epoch_batches, loss_of)
        first, last = result.records[0], result.records[-1]
        info = {f"{name}_loss": {"first": first[name], "last": last[name]} for name in ("gen", "intra", "inter")}
        return palette, info

    def _codes(self, data: TrainingData, context: FitContext) -> tuple[np.ndarray, dict]:
        p = self.params
        palette, info = self.train(data, context)
        with torch.no_grad():
            vectors = torch.cat([palette.palettes(list(range(s, min(s + 256, data.n_items)))).float().cpu()
                                 for s in range(0, data.n_items, 256)]).numpy()
        rng = np.random.default_rng([self.seed, 11])
        codes = np.column_stack([
            kmeans(pca(vectors[:, level].astype(np.float64), p["pca_dims"]), p["codebook_size"], rng,
                   p["kmeans_iterations"]).labels
            for level in range(vectors.shape[1])])
        unit = torch.nn.functional.normalize(torch.as_tensor(vectors), dim=-1)
        within = unit @ unit.transpose(1, 2)
        off = ~torch.eye(vectors.shape[1], dtype=torch.bool)
        info["palette_mean_intra_cosine"] = float(within[:, off].mean()) if vectors.shape[1] > 1 else 1.0
        info["content_fields"], info["task_fields"] = palette.content_fields, palette.task_fields
        return codes.astype(np.int64), info


@hookimpl
def register_tokenizers(register) -> None:
    register(
        TokenizerSpec(
            name="lamia", version="0f70a0b41edb",
            factory=lambda params, seed: LamiaTokenizer(params, seed),
            kind="codes",
            description="LAMIA: multi-aspect item palette from a causal LM (block mask, dual forward pass, "
            "palette hinge losses), PCA + k-means per position, index token for collisions",
            params=PARAMS,
            validate=check_params,
        )
    )
