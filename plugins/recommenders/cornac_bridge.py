"""Cornac 3.0.1's next-item models (``cornac:SASRec``, ``cornac:TIGER``, ...) on *our* split.

Cornac (https://cornac.preferred.ai) is an optional extra: ``pip install
'genrec-bench[cornac]'``. Without it, ``--methods cornac:TIGER`` fails when the method
is resolved, before anything trains.

**Training data.** The model is fitted on our training sequences only, handed to Cornac as
a ``SequentialDataset`` with one session per user whose item and user indices *are* ours
(the global id maps are the identity over the whole catalogue), so Cornac's scores come
back in our item order and cold items keep their rows. Timestamps are positions.
The model input is capped at ``TrainingData.max_history`` items (Cornac's ``max_len``).

**Selection on our validation.** Every model here keeps its best checkpoint by a
validation score that its own fit loop asks for once per epoch. That one call is
replaced, for our instance only, by our validation: ``context.validate`` on our
validation cases (a fixed sample of ``valid_cases``) with our evaluator, whose NDCG@10
Cornac then compares; Cornac never sees a validation set of its own (it gets a
placeholder with nothing to read). The seams, per model (``CornacModel.seam``):

- ``val_score`` (SASRec, BERT4Rec, GRU4Rec): the module-level function their ``fit``
  calls, replaced in that module while our fit runs;
- ``_validate`` (TIGER, RPG) and ``_validation_loss`` (LETTER, which selects by a loss:
  it gets minus our NDCG@10): methods, replaced on our instance.

Early stopping: after ``patience`` validations without a gain of NDCG@10, training
stops. LETTER stops by its own ``early_stopping_patience``, set to ours; for the others
our validation ends Cornac's loop by raising, and the best weights (the epoch Cornac would
have restored: the same rule, a strict gain, the same count) are put back here. RPG has an
early exit of its own too, but its count lives in local variables of Cornac's loop, which a
resumed fit could not restore, so we stop it ourselves and then do what its fit does after
the loop (:meth:`CornacRecommender._after_fit`: the item graph its decoding reads, built
from the chosen weights); a test checks that this gives the ranking Cornac's own stop gave.

Resuming: TIGER and RPG (``CornacModel.resumes``) are checkpointed after every validation
and a killed fit resumes to the uninterrupted curve (``CornacRecommender._train``); a
finished fit stays checkpointed until the run's row is stored, so a run killed while
ranking reuses it (``CornacRecommender._reuse_finished``). LETTER counts patience in local
variables of Cornac's loop and selects by a loss, so it starts over.

**Scoring.** :meth:`CornacRecommender.score` asks Cornac's public ``score(user, history)``
for every case: scores over the whole catalogue, which our evaluator masks (seen items)
and ranks (pessimistic ties). TIGER and LETTER score by constrained beam search and RPG
by graph-guided decoding (their papers' and Cornac's default, ``scoring``): only the
``n_beams`` items found get a real score, the rest -1e10, and Cornac's beam does not
prune the case's seen items, so seen items it finds take slots that our masking then
empties; ``scoring=exact`` ranks the whole catalogue by likelihood instead. RPG is
validated by exact scoring, as Cornac validates it (its item graph is built after
training).

**Content.** TIGER, LETTER and RPG read every item's text embedding from the harness's
text-embedding service (``text_encoder``), as a ``FeatureModality`` aligned with our
items. LETTER's collaborative regulariser reads the harness's CF embeddings (SASRec,
fitted on the training data), reduced by PCA to its RQ-VAE latent width, which Cornac's
LETTER requires the two to share.

**Parameters.** Sizes and the training budget are ours (:data:`PARAMS`), forwarded to
each model's own keywords (:data:`MODELS`); a value of 0 (or an empty string) leaves
Cornac's value: the ``recipe``'s, else the constructor default, which Cornac documents
as the paper's architecture. ``extra`` passes any further constructor keyword.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmark import hookimpl
from benchmark.components import (
    CaseBatch,
    FitContext,
    ItemIdentifiers,
    Recommender,
    RecommenderSpec,
    TrainingData,
)
from benchmark.errors import MissingExtraError, ParameterError, PluginError
from benchmark.nn.engine import (
    CHECKPOINT_FORMAT,
    EarlyStopping,
    adopt_finished,
    checkpoint_identity,
    checkpoint_path,
    keep_finished,
    load_checkpoint,
    replay,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from benchmark.params import Param

OWNER = "recommender 'cornac'"
INSTALL = "install with pip install 'genrec-bench[cornac]'"
# RPG's OPQ tokenizer quantises with 8-bit codebooks (faiss PQ ...x8).
RPG_CODES = 256


@dataclass(frozen=True)
class CornacModel:
    """How one Cornac next-item model is driven: which of our parameters it takes under
    which of its keywords, where its fit loop asks for a validation score, what it reads."""

    keywords: Mapping[str, tuple[str, ...]]  # our parameter -> its constructor keyword(s)
    seam: str  # val_score, _validate or _validation_loss (see the module docstring)
    content: bool = False  # reads item text embeddings
    stops_itself: bool = False  # its fit loop has an early_stopping_patience
    resumes: bool = False  # checkpointed after every validation; a killed fit resumes (see _train)
    packages: tuple[str, ...] = ()  # modules its fit imports besides cornac and torch
    paper_recipe: str = ""  # the paper's recipe, a dict in its Cornac package
    scorings: tuple[str, ...] = ()  # its scoring modes, the default first
    validation_scoring: str = ""  # the mode validation during training needs, if not the chosen one
    caps_input: bool = True  # takes max_len


TRAINING = {"batch_size": ("batch_size",), "learning_rate": ("learning_rate",)}
ID_MODEL = {**TRAINING, "loss": ("loss",), "d_model": ("embedding_dim",), "layers": ("num_blocks",),
            "heads": ("num_heads",)}
SEMANTIC_ID_MODEL = {
    **TRAINING, "d_model": ("d_model",), "layers": ("num_enc_layers", "num_dec_layers"), "heads": ("num_heads",),
    "head_dim": ("d_kv",), "d_ff": ("d_ff",), "codebook_size": ("rqvae_codebook_size",),
    "levels": ("rqvae_num_levels",), "tokenizer_epochs": ("rqvae_n_epochs",), "beams": ("n_beams",),
    "scoring": ("scoring",),
}

# What a model does not take is Cornac's design: SASRec's feed-forward block is d_model
# wide (the paper's) and its heads split d_model; BERT4Rec (Cornac's TransformerRec trained
# next-item-at-last-position) has 4 x d_model; GRU4Rec is one GRU layer of d_model units
# (the paper's), trained on whole sequences (it has no input cap); RPG's OPQ codebooks
# hold 256 codes (faiss 8-bit PQ), so codebook_size is not taken.
MODELS: dict[str, CornacModel] = {
    "SASRec": CornacModel(ID_MODEL, "val_score"),
    "BERT4Rec": CornacModel(ID_MODEL, "val_score"),
    "GRU4Rec": CornacModel({**TRAINING, "loss": ("loss",), "d_model": ("layers",)}, "val_score", caps_input=False),
    "TIGER": CornacModel(SEMANTIC_ID_MODEL, "_validate", content=True, packages=("transformers",),
                         paper_recipe="PAISCHER_CONFIG", scorings=("beam", "exact"), resumes=True),
    "LETTER": CornacModel(SEMANTIC_ID_MODEL, "_validation_loss", content=True, stops_itself=True,
                          packages=("transformers", "k_means_constrained"), paper_recipe="LETTER_CONFIG",
                          scorings=("beam", "exact")),
    "RPG": CornacModel(
        {**TRAINING, "d_model": ("d_model",), "layers": ("n_layer",), "heads": ("n_head",), "d_ff": ("n_inner",),
         "digits": ("n_codebook",), "pca_dim": ("pca_dim",), "beams": ("n_beams",), "scoring": ("scoring",)},
        "_validate", content=True, resumes=True, packages=("transformers", "faiss", "sklearn"),
        paper_recipe="RPG_CONFIG", scorings=("graph", "exact"), validation_scoring="exact"),
}
# Constructor keywords the bridge sets itself: the protocol (input cap, budget, selection
# on our validation, seed, device) is not Cornac's to choose.
RESERVED = frozenset({
    "name", "max_len", "n_epochs", "model_selection", "val_eval_every", "val_metric", "val_k", "val_sample",
    "val_batch_size", "early_stopping_patience", "seed", "device", "trainable", "verbose", "cf_embeddings",
    "cf_embedding_ids",
})
# Models whose attention splits d_model into the heads (TIGER's T5 has its own head width).
HEADS_SPLIT_WIDTH = ("SASRec", "BERT4Rec", "RPG")
PAPER = "paper"
DEFAULTS = "defaults"

PARAMS = (
    Param("model", str, "SASRec", "Cornac next-item model: " + ", ".join(MODELS)),
    Param("recipe", str, DEFAULTS,
          "Cornac's starting keywords: 'defaults' (its constructor's: the paper's architecture), 'paper' (the "
          "paper recipe Cornac ships: TIGER PAISCHER_CONFIG, LETTER LETTER_CONFIG, RPG RPG_CONFIG; the ID models "
          "have none), or the name of a recipe in the model's Cornac package (e.g. GRID_CONFIG)",
          profiles={"paper": PAPER}),
    # tiny: seconds on the synthetic catalogue; cpu (the boards): as the training engine's
    # cpu profile, every validation case each epoch, patience 10, a cap no fit reaches.
    Param("epochs", int, 200, "maximum training epochs (Cornac's n_epochs); validation after each",
          profiles={"tiny": 3, "cpu": 200}, minimum=1),
    Param("patience", int, 10, "validations without gain of validation NDCG@10 before stopping",
          profiles={"tiny": 2, "cpu": 10}, minimum=1),
    Param("valid_cases", int, 0, "validation cases per validation (0: all); a fixed seeded sample, the same "
          "for every method", profiles={"tiny": 500, "cpu": 0}, minimum=0),
    Param("batch_size", int, 0, "training batch (0: Cornac's; SASRec 512, TIGER 256)", minimum=0),
    Param("learning_rate", float, 0.0, "learning rate of the model's own optimiser (0: Cornac's; Adam 1e-3 for "
          "SASRec and TIGER, Adagrad 0.05 for GRU4Rec)", minimum=0.0, low=1e-4, high=1e-2, log=True),
    Param("loss", str, "", "ID models' loss (SASRec, BERT4Rec, GRU4Rec: ce, bce, bpr, bpr-max, top1...; "
          "empty: Cornac's)"),
    # Sizes: tiny trains in seconds; cpu is our tiger's cpu size (benchmark/nn/sequences.py:
    # d_model 64, 2 layers, 4 heads of 16, MLP 256; RQ-VAE 3 levels of 256 codes, 1,500 epochs).
    Param("d_model", int, 0, "model width (SASRec/BERT4Rec: embedding size; GRU4Rec: GRU units; 0: Cornac's)",
          profiles={"tiny": 32, "cpu": 64}, minimum=0),
    Param("layers", int, 0, "transformer blocks (TIGER, LETTER: encoder and decoder each; 0: Cornac's)",
          profiles={"tiny": 1, "cpu": 2}, minimum=0),
    Param("heads", int, 0, "attention heads (0: Cornac's)", profiles={"tiny": 2, "cpu": 4}, minimum=0),
    Param("head_dim", int, 0, "width of each head (TIGER, LETTER: T5's d_kv; 0: Cornac's)",
          profiles={"tiny": 16, "cpu": 16}, minimum=0),
    Param("d_ff", int, 0, "feed-forward width (TIGER, LETTER, RPG; 0: Cornac's)",
          profiles={"tiny": 64, "cpu": 256}, minimum=0),
    Param("codebook_size", int, 0, "codes per RQ-VAE level (TIGER, LETTER; 0: Cornac's 256)",
          profiles={"tiny": 32, "cpu": 256}, minimum=0),
    Param("levels", int, 0, "RQ-VAE levels (TIGER: before its collision level; LETTER; 0: Cornac's)",
          profiles={"tiny": 3, "cpu": 3}, minimum=0),
    Param("tokenizer_epochs", int, 0, "RQ-VAE training epochs (TIGER, LETTER; 0: Cornac's)",
          profiles={"tiny": 10, "cpu": 1500}, minimum=0),
    Param("digits", int, 0, "RPG's semantic-ID length: OPQ codebooks per item (0: Cornac's 32)",
          profiles={"tiny": 4, "cpu": 16}, minimum=0),
    Param("pca_dim", int, 0, "RPG's whitened PCA of the text embedding before OPQ (0: Cornac's 512, which "
          "leaves a narrower embedding as it is)", profiles={"tiny": 32, "cpu": 128}, minimum=0),
    Param("beams", int, 0, "beams of TIGER's and LETTER's beam search and RPG's graph decoding (0: Cornac's; "
          "TIGER 20, RPG 50). cpu: 50, as Cornac's search cannot prune the seen items our protocol excludes",
          profiles={"cpu": 50}, minimum=0),
    Param("scoring", str, "", "TIGER, LETTER: beam or exact; RPG: graph or exact (empty: Cornac's, beam / graph)"),
    Param("text_encoder", str, "minilm", "encoder plugin for item text (TIGER, LETTER, RPG)"),
    Param("extra", str, "{}", "JSON object of further Cornac constructor keywords, e.g. '{\"dropout\": 0.3}'"),
)
# Cornac's value of ``name`` is kept when ours is 0 or empty.
UNSET = (0, 0.0, "")
# Cornac's beam and graph searches give the items they did not find -1e10; above this an
# item was scored.
UNSCORED = -1e9


class PatienceExhausted(Exception):
    """Raised from our validation to end a Cornac fit loop that has no early exit."""


class ExternalValidation:
    """Cornac's ``val_set`` argument. Its fit loops select checkpoints only when given one;
    every reader of it is replaced by our validation, so it holds nothing to read."""

    def reset(self) -> None:
        """Cornac's ``fit`` resets the validation set it is given."""


# ---------------------------------------------------------------------- parameters


def cornac_installed() -> bool:
    return find_spec("cornac") is not None


def check_params(params: dict) -> None:
    """Checked when the method is resolved: the model name, the extra's installation, the
    model's own packages, ``extra``; with Cornac installed, Cornac's constructor checks the
    keywords (loss names, recipe and extra keys) without fitting anything."""
    name = params["model"]
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ParameterError(f"{OWNER}: {name!r} is not a supported Cornac next-item model; {hint}"
                             f"use one of {', '.join(MODELS)}")
    if not cornac_installed():
        raise MissingExtraError(f"{OWNER}: Cornac is not installed; {INSTALL}")
    missing = [package for package in MODELS[name].packages if find_spec(package) is None]
    if missing:
        raise MissingExtraError(f"{OWNER}: Cornac's {name} needs {', '.join(missing)}, not installed; {INSTALL}")
    extra = parse_extra(params["extra"])
    reserved = sorted(RESERVED & set(extra))
    if reserved:
        raise ParameterError(f"{OWNER}: parameter 'extra' sets {', '.join(reserved)}, which the bridge sets "
                             "(max history, epochs, patience, our validation, seed, device); use our parameters")
    model = MODELS[name]
    for ours in ("scoring", "loss"):
        if params[ours] and ours not in model.keywords:
            raise ParameterError(f"{OWNER}: Cornac's {name} takes no {ours!r}; leave it empty")
    if params["scoring"] and params["scoring"] not in model.scorings:
        raise ParameterError(f"{OWNER}: parameter 'scoring' is {params['scoring']!r}; {name} scores by "
                             f"{' or '.join(model.scorings)}")
    if name in HEADS_SPLIT_WIDTH and params["d_model"] and params["heads"] and params["d_model"] % params["heads"]:
        raise ParameterError(f"{OWNER}: d_model {params['d_model']} is not a multiple of heads {params['heads']}, "
                             f"which {name}'s attention needs")
    construct(name, keywords(name, params, max_history=20, seed=0, device="cpu"))


def parse_extra(text: str) -> dict[str, Any]:
    try:
        extra = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{OWNER}: parameter 'extra' is not JSON: {exc}; write a JSON object") from None
    if not isinstance(extra, dict):
        raise ParameterError(f"{OWNER}: parameter 'extra' is {extra!r}; write a JSON object, "
                             "e.g. '{\"dropout\": 0.3}'")
    return extra


def recipe(name: str, which: str) -> dict[str, Any]:
    """The keywords Cornac starts from: none (its defaults), the model's paper recipe, or a named one."""
    if which == DEFAULTS or (which == PAPER and not MODELS[name].paper_recipe):
        return {}
    attribute = MODELS[name].paper_recipe if which == PAPER else which
    package = importlib.import_module(f"cornac.models.{name.lower()}")
    table = getattr(package, attribute, None)
    if not isinstance(table, dict):
        known = sorted(key for key, value in vars(package).items() if key.isupper() and isinstance(value, dict))
        raise ParameterError(f"{OWNER}: parameter 'recipe' is {which!r}, not a recipe of Cornac's {name}; use "
                             f"{DEFAULTS}, {PAPER}" + "".join(f", {key}" for key in known))
    return dict(table)


def keywords(name: str, params: dict, max_history: int, seed: int, device: str) -> dict[str, Any]:
    """Cornac constructor keywords: the recipe, our non-zero parameters, ``extra``, then the
    protocol's own (input cap, budget, selection on our validation, seed, device)."""
    model = MODELS[name]
    chosen = recipe(name, params["recipe"])
    for ours, theirs in model.keywords.items():
        if params[ours] not in UNSET:
            value = [params[ours]] if name == "GRU4Rec" and ours == "d_model" else params[ours]
            chosen.update(dict.fromkeys(theirs, value))
    chosen.update(parse_extra(params["extra"]))
    chosen.update(n_epochs=params["epochs"], model_selection="best", val_eval_every=1, seed=seed, device=device,
                  verbose=False)
    if model.caps_input:
        chosen["max_len"] = max_history
    if model.stops_itself:
        chosen["early_stopping_patience"] = params["patience"]
    if name == "LETTER":
        # k-means-constrained would start 10 worker processes (Cornac's default) on every
        # RQ-VAE epoch; one process gives the same clusters (seeded) on a 2-core machine.
        chosen["rqvae_kmeans_jobs"] = 1
    return chosen


def construct(name: str, chosen: dict[str, Any]) -> Any:
    """The Cornac model object (no training): Cornac's constructor checks the keywords."""
    import cornac.models

    try:
        return getattr(cornac.models, name)(**chosen)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{OWNER}: Cornac's {name} refused its keywords: {error}; see "
                             f"help(cornac.models.{name}) and the 'extra' parameter") from None


# ---------------------------------------------------------------------- the recommender


class CornacRecommender(Recommender):
    accepts = frozenset({"atomic"})

    def __init__(self, params: dict, seed: int):
        check_params(params)
        self.params = params
        self.seed = seed
        self.name = params["model"]
        self.spec = MODELS[self.name]
        # Per ranked case after training (None before): unexcluded items the search scored,
        # and whether any case left an item unscored (a beam or graph search, not exact).
        self._found: list[int] | None = None
        self._partial = False

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        p = self.params
        self.n_items = data.n_items
        chosen = keywords(self.name, p, data.max_history, self.seed, context.device)
        train_set = sequential_dataset(data, self.seed)
        if self.name == "GRU4Rec":
            # Cornac's GRU4Rec keeps batch_size parallel sessions; with fewer training
            # sessions than that its hidden state and input disagree in size and it fails.
            sessions = sum(len(sequence) >= 2 for sequence in data.train)
            chosen["batch_size"] = min(construct(self.name, chosen).batch_size, max(1, sessions))
        if self.spec.content:
            from cornac.data import FeatureModality

            text = np.asarray(context.text_embeddings(p["text_encoder"]), np.float32)
            if self.name == "RPG":
                check_rpg_data(data, text, chosen)
            train_set.add_modalities(item_feature=FeatureModality(features=text, ids=list(range(data.n_items))))
        if self.name == "LETTER":
            latent = construct(self.name, chosen).rqvae_latent_dim
            chosen["cf_embeddings"] = reduce_width(np.asarray(context.cf_embeddings(), np.float32), latent)
            chosen["cf_embedding_ids"] = list(range(data.n_items))
        self.model = construct(self.name, chosen)
        self._train(train_set, context)
        self._found, self._partial = [], False


    def _train(self, train_set, context: FitContext) -> None:
        """Cornac's own fit loop, validated by us after every epoch (see the module docstring).

        A model that ``resumes`` (TIGER) is checkpointed after every validation like the
        training engine's fits: its network, its optimiser (caught as Cornac creates it),
        our early-stopping state and epoch records, the torch / numpy / python random states
        and Cornac's own generator. A killed fit starts Cornac's fit again, which re-trains
        the tokenizer (seeded, so the same codes) and creates the network and its optimiser;
        at that moment they take the checkpoint's states, and Cornac's loop runs the epochs
        left, so the fit continues as if never stopped. Cornac's constant learning rate
        (its default) is what makes this exact; a model given another schedule restarts.
        """
        p, model = self.params, self.model
        name = f"train cornac:{self.name}"
        stopper = EarlyStopping(p["patience"])
        path = checkpoint_path(context, name) if self.spec.resumes and \
            getattr(model, "lr_schedule", "constant") == "constant" else None
        saved = load_checkpoint(path) if path is not None else None
        if saved is not None and saved.get("finished") is not None:
            return self._reuse_finished(train_set, context, name, path, saved)
        records: list[dict[str, float]] = []
        epoch = 0
        if saved is not None:
            stopper.__dict__.update(saved["stopper"])
            records, epoch = saved["records"], saved["epoch"] + 1
            model.n_epochs = p["epochs"] - epoch  # the epochs left; Cornac counts its loop from 1
            print(f"{name}: resuming from the checkpoint after epoch {saved['epoch']} ({path})", file=sys.stderr,
                  flush=True)
            replay(context, records)
        bar = tqdm(total=p["epochs"], initial=epoch, desc=name, unit="epoch", disable=not context.progress,
                   leave=False)
        started = time.perf_counter() - (saved["seconds"] if saved is not None else 0.0)
        optimisers: list[Any] = []

        def validation_score() -> float:
            nonlocal epoch
            scoring = self.spec.validation_scoring
            with replaced(model, "scoring", scoring) if scoring else contextlib.nullcontext():
                metrics = context.validate(self, limit=p["valid_cases"] or None)
            metrics["seconds"] = time.perf_counter() - started
            context.epoch_end(epoch, metrics)
            records.append({"epoch": epoch, **metrics})
            bar.update()
            bar.set_postfix(ndcg10=f"{metrics['ndcg@10']:.4f}")
            stop = stopper.step(metrics["ndcg@10"], epoch, model.model)
            if path is not None and not stop and optimisers and epoch < p["epochs"] - 1:
                save_checkpoint(path, {
                    "format": CHECKPOINT_FORMAT, "run": checkpoint_identity(context, name), "epoch": epoch,
                    "model": model.model.state_dict(), "optimizer": optimisers[-1].state_dict(),
                    "stopper": dict(stopper.__dict__), "records": records, "seconds": metrics["seconds"],
                    "rng": rng_states(), "cornac_rng": model.rng})
            epoch += 1
            if stop and not self.spec.stops_itself:
                raise PatienceExhausted
            return metrics["ndcg@10"]

        try:
            with our_validation(model, self.spec.seam, validation_score), \
                    network_optimiser(model, optimisers, saved) if path is not None else contextlib.nullcontext():
                model.fit(train_set, ExternalValidation())
        except PatienceExhausted:
            pass
        except ValueError as error:
            raise PluginError(f"{OWNER}: Cornac's {self.name} cannot fit this data: {error}") from None
        finally:
            bar.close()
        stopper.restore(model.model)
        self._after_fit()
        reason = "patience" if stopper.flat >= p["patience"] else "epoch cap"
        # The same summary as the training engine's, for the boards' convergence columns.
        summary = {
            "epochs": epoch, "best_epoch": stopper.best_epoch, "stop_reason": reason,
            "seconds": round(time.perf_counter() - started, 3),
            "resumed_from": saved["epoch"] + 1 if saved is not None else None,
            "seconds_before_resume": round(saved["seconds"], 3) if saved is not None else 0.0}
        context.run.state.setdefault("training", {})[name] = summary
        if path is not None:
            # As the engine's fits: kept, marked finished, until the run's row is stored, so a
            # run killed while ranking reuses these weights (see _reuse_finished).
            keep_finished(path, context, name, {
                "epoch": epoch - 1, "finished": summary, "model": model.model.state_dict(), "records": records,
                "seconds": summary["seconds"], "rng": rng_states(), "cornac_rng": model.rng})

    def _reuse_finished(self, train_set, context: FitContext, name: str, path, saved: dict) -> None:
        """A fit that finished in an earlier process (whose run died before storing its row):
        Cornac's fit runs with no epoch, so it builds what scoring reads (the tokenizer's
        codes, seeded as before, the network), then the network, the random states and
        Cornac's generator take the finished fit's states."""
        model = self.model
        summary = adopt_finished(saved, context, name, path)
        model.n_epochs = 0

        def never() -> float:
            raise AssertionError("a fit of no epoch validated")

        try:
            with our_validation(model, self.spec.seam, never):
                model.fit(train_set, ExternalValidation())
        except ValueError as error:
            raise PluginError(f"{OWNER}: Cornac's {self.name} cannot fit this data: {error}") from None
        model.model.load_state_dict(saved["model"])
        set_rng_states(saved["rng"])
        model.rng = saved["cornac_rng"]
        self._after_fit()
        context.run.state.setdefault("training", {})[name] = summary

    def _after_fit(self) -> None:
        """What Cornac's fit does after its loop, done again on the weights validation chose
        (a loop we ended by raising, or a finished fit reused, skipped it or did it on other
        weights): RPG's item graph, which its graph decoding reads. The others need nothing."""
        model = self.model
        if self.name == "RPG":
            model.model.eval()
            model.adjacency = model.model.build_adjacency(model.total_items, model.graph_edges,
                                                          model.graph_chunk_size)
            model.model.to("cpu").eval()

    def score(self, batch: CaseBatch) -> np.ndarray:
        import torch

        scores = np.empty((len(batch), self.n_items), np.float64)
        with torch.no_grad():
            for row, (user, history) in enumerate(zip(batch.users, batch.histories)):
                scores[row] = self.model.score(int(user), [int(item) for item in history])
        if self._found is not None:
            # A beam (or graph) search scores the items it found and leaves the rest at
            # Cornac's floor; it cannot prune the excluded (seen) items, so count what is left.
            found = scores > UNSCORED
            self._partial = self._partial or not found.all()
            for row, excluded in enumerate(batch.exclude if batch.exclude is not None else [None] * len(batch)):
                kept = found[row].copy()
                if excluded is not None and len(excluded):
                    kept[np.asarray(excluded, np.int64)] = False
                self._found.append(int(kept.sum()))
        return scores

    def diagnostics(self) -> dict[str, float]:
        found = np.asarray(self._found or [], np.float64)
        if not len(found) or not self._partial:
            return {}  # exact scoring (or nothing ranked): every item has a score
        return {"search/found_mean": float(found.mean()),
                "search/short_of_20_share": float((found < 20).mean())}

    def backbone(self) -> str:
        model = self.model
        width = next((getattr(model, key) for key in ("d_model", "embedding_dim") if hasattr(model, key)), None)
        if self.name == "GRU4Rec":
            width = "x".join(str(units) for units in model.layers)
        depth = next((getattr(model, key) for key in ("num_enc_layers", "num_blocks", "n_layer")
                      if hasattr(model, key)), None)
        return f"cornac {self.name} d{width}" + (f" L{depth}" if depth is not None else "")


# ---------------------------------------------------------------------- helpers


def sequential_dataset(data: TrainingData, seed: int):
    """Our training sequences as a Cornac ``SequentialDataset``: one session per user,
    user and item indices equal to ours (identity id maps over every user and item)."""
    from cornac.data import SequentialDataset

    rows = [(user, user, int(item), position)
            for user, sequence in enumerate(data.train) for position, item in enumerate(sequence)]
    if not rows:
        raise PluginError(f"{OWNER}: the split has no training interaction to fit")
    return SequentialDataset.build(
        rows, fmt="USIT", seed=seed,
        global_uid_map=OrderedDict((user, user) for user in range(data.n_users)),
        global_sid_map=OrderedDict(),
        global_iid_map=OrderedDict((item, item) for item in range(data.n_items)),
    )


def check_rpg_data(data: TrainingData, text: np.ndarray, chosen: dict[str, Any]) -> None:
    """RPG's OPQ trains on the items with training interactions; faiss aborts the process
    (not an exception) when they are fewer than the vector width, and refuses fewer than
    its 256 codes."""
    warm = int((data.train_counts > 0).sum())
    width = text.shape[1]
    pca = chosen.get("pca_dim", 512)
    if pca and 0 < pca < width:
        width = min(pca, data.n_items - 1)
    if warm < RPG_CODES:
        raise PluginError(f"{OWNER}: Cornac's RPG trains {RPG_CODES} OPQ codes per digit on the items with "
                          f"training interactions, and this split has {warm}; use a larger catalogue")
    if warm < width:
        raise PluginError(f"{OWNER}: Cornac's RPG trains OPQ on {width}-wide vectors of the {warm} items with "
                          f"training interactions, fewer than the width (faiss would abort); set pca_dim below {warm}")


def reduce_width(table: np.ndarray, width: int) -> np.ndarray:
    """``table`` projected on its ``width`` leading principal directions (as is when it has
    that width already)."""
    if table.shape[1] == width:
        return table
    if table.shape[1] < width:
        raise PluginError(f"{OWNER}: the CF embeddings are {table.shape[1]} wide, narrower than LETTER's RQ-VAE "
                          f"latent ({width}); set extra '{{\"rqvae_latent_dim\": {table.shape[1]}}}'")
    centred = table - table.mean(0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    return np.ascontiguousarray(centred @ directions[:width].T, np.float32)


@contextlib.contextmanager
def replaced(owner: Any, attribute: str, value: Any) -> Iterator[None]:
    """``owner.attribute`` set to ``value`` for the block; an instance attribute that only
    shadowed its class's is removed again."""
    had_own = attribute in vars(owner)
    before = getattr(owner, attribute)
    setattr(owner, attribute, value)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, attribute, before)
        else:
            delattr(owner, attribute)


@contextlib.contextmanager
def our_validation(model: Any, seam: str, score: Callable[[], float]) -> Iterator[None]:
    """While the block runs, ``model``'s fit loop gets ``score()`` where it asks Cornac for
    a validation score (a loss: ``-score()``), and reads no validation set of its own."""
    if seam == "val_score":
        module = sys.modules[type(model).fit.__module__]
        with replaced(module, "val_score", lambda *args, **kwargs: score()):
            yield
        return
    sessions = replaced(model, "_val_sessions", lambda val_set: [])
    if seam == "_validate":
        hook = replaced(model, "_validate", lambda sessions, metric: score())
    else:
        hook = replaced(model, "_validation_loss", lambda torch, sessions: -score())
    with sessions, hook:
        yield


@contextlib.contextmanager
def network_optimiser(model: Any, caught: list, saved: dict | None) -> Iterator[None]:
    """While the block runs, every torch optimiser created over the parameters of
    ``model.model`` (Cornac's network, built just before its optimiser) is appended to
    ``caught``; with a checkpoint ``saved``, the network, that optimiser, the random states
    and Cornac's generator take the checkpoint's states at that moment (the tokenizer's
    training before it ran as in the first attempt)."""
    import torch

    original = torch.optim.Optimizer.__init__

    def init(optimiser, params, *args, **kwargs):
        params = list(params)
        original(optimiser, params, *args, **kwargs)
        network = getattr(model, "model", None)
        if not isinstance(network, torch.nn.Module):
            return
        owned = {id(x) for x in network.parameters()}
        if not owned or not all(id(x) in owned for group in optimiser.param_groups for x in group["params"]):
            return
        caught.append(optimiser)
        if saved is not None and len(caught) == 1:
            network.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimizer"])
            set_rng_states(saved["rng"])
            model.rng = saved["cornac_rng"]

    torch.optim.Optimizer.__init__ = init
    try:
        yield
    finally:
        torch.optim.Optimizer.__init__ = original


@hookimpl
def register_recommenders(register) -> None:
    register(
        RecommenderSpec(
            name="cornac", version="1", family="cornac",
            factory=lambda params, seed: CornacRecommender(params, seed),
            accepts=CornacRecommender.accepts,
            description="a Cornac 3.0.1 next-item model (SASRec, BERT4Rec, GRU4Rec, TIGER, LETTER, RPG) trained on "
            "our split, selected on our validation, scored by our evaluator (extra: genrec-bench[cornac])",
            params=PARAMS,
            validate=check_params,
        )
    )
