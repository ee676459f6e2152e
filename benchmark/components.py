"""What plugins build and what the harness calls: component interfaces and their specs.

A plugin registers *specs* (name, factory, declared parameters); the harness builds the
component from a spec and drives it. Identifier kinds:

- ``atomic``    one id per item (the item index itself);
- ``codes``     a tuple of discrete codes per item (``codes[i]``), per-level vocabularies;
- ``text``      a string per item (title, category path...);
- ``token_set`` an unordered set of token vectors per item, built jointly with its
                recommender (SETRec).

A *joint* tokenizer (``TokenizerSpec.joint``) is trained together with its recommender:
its ``fit`` returns a starting point (``ItemIdentifiers.token_sets``) and the modules that
make the tokens (``ItemIdentifiers.modules``, a ``torch.nn.Module``); the recommender trains
those modules with its own weights and reports the final identifiers through
:meth:`Recommender.trained_identifiers`, which the harness stores and evaluates instead of
the starting point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from benchmark.data.dataset import ItemCatalog, RawDataset
from benchmark.data.splits import DEFAULT_MAX_HISTORY, Cases, Split
from benchmark.errors import ParameterError
from benchmark.params import Param

IDENTIFIER_KINDS = ("atomic", "codes", "text", "token_set")


@dataclass
class CaseBatch:
    """A batch of cases as a recommender sees them: no targets.

    ``histories[i]``: the model input, the user's last ``max_history`` items before the
    case (cold-items: warm items only). ``seen[i]``: every earlier item of the user, uncapped.
    ``exclude[i]``: the items the ranking must leave out (the seen items by default,
    ``None`` under ``--keep-seen``): a list-based recommender prunes them itself (e.g. in
    its trie); for a score-based one the harness masks them.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    seen: list[np.ndarray]
    exclude: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class TrainingData:
    """What fitting may read: training sequences, validation cases and the item catalog.

    No field holds a test interaction: not the training sequences, not the validation
    cases' input or ``seen`` items (see :mod:`benchmark.data.splits`), and there is no
    full-sequence dataset, only the item catalog (ids and content).

    - ``train[u]``: user u's training items (indices ``0..n_items-1``) in time order, one
      entry per user ``0..n_users-1``, possibly empty; ``train_timestamps[u]`` their times.
    - ``valid``: validation cases (early stopping, tuning).
    - ``train_counts[i]``: item i's training interactions (0: cold);
      ``group_of_item[i]``: popularity group 0..3, -1 for cold items.
    - ``max_history``: the cap on model input (``--max-history``); read it, never assume 20.
    """

    catalog: ItemCatalog
    split_name: str
    train: list[np.ndarray]
    train_timestamps: list[np.ndarray]
    valid: Cases
    train_counts: np.ndarray
    group_of_item: np.ndarray
    digest: str = ""
    max_history: int = DEFAULT_MAX_HISTORY

    @classmethod
    def from_split(cls, split: Split) -> TrainingData:
        return cls(
            catalog=split.dataset.catalog,
            split_name=split.name,
            digest=split.digest,
            train=split.train,
            train_timestamps=split.train_timestamps,
            valid=split.valid,
            train_counts=split.train_counts,
            group_of_item=split.group_of_item,
            max_history=split.max_history,
        )

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    @property
    def n_users(self) -> int:
        return len(self.train)


@dataclass
class ItemIdentifiers:
    """Identifiers for every catalog item, cold items included."""

    kind: str
    n_items: int
    codes: np.ndarray | None = None
    vocab_sizes: tuple[int, ...] = ()
    texts: list[str] | None = None
    token_sets: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Joint tokenizers only: the trainable module(s) that make ``token_sets``.
    modules: Any = None

    def __post_init__(self) -> None:
        if self.kind not in IDENTIFIER_KINDS:
            raise ValueError(f"identifier kind {self.kind!r} is not one of {IDENTIFIER_KINDS}")


@dataclass
class RunInfo:
    """Identity of one run, handed to lifecycle hooks and components. ``versions``: the
    ``{plugin: version}`` part of its run key; ``state``: what the fit records (``epochs``,
    ``training``)."""

    dataset: str
    split: str
    method: str
    params: dict[str, Any]
    seed: int
    profile: str
    state: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


class Encoder(Protocol):
    """Turns item texts into dense vectors (one row per text); ``progress`` shows a progress bar."""

    dim: int

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray: ...


class Tokenizer(Protocol):
    """Builds identifiers for every item from training interactions and item content."""

    kind: str

    def fit(self, data: TrainingData, context: FitContext) -> ItemIdentifiers: ...


class Recommender:
    """Base class for recommenders.

    Subclasses implement :meth:`fit` and either :meth:`score` (one pass over the whole
    catalog: the harness masks and ranks) or :meth:`recommend` (own top-k lists, e.g. by
    constrained beam search).
    """

    accepts: frozenset[str] = frozenset({"atomic"})

    def fit(self, data: TrainingData, identifiers: ItemIdentifiers, context: FitContext) -> None:
        raise NotImplementedError

    def score(self, batch: CaseBatch) -> np.ndarray | None:
        """Scores of shape (len(batch), n_items), or ``None`` if this model generates lists
        (a recommender implementing both may return ``None`` for a batch it answers with
        :meth:`recommend`, e.g. under a decoding option)."""
        return None

    def recommend(self, batch: CaseBatch, k: int) -> np.ndarray:
        """Top-``k`` item indices per case (``-1`` pads short lists)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither score nor recommend")

    def backbone(self) -> str:
        """Short description of the model size for the leaderboard."""
        return type(self).__name__

    def diagnostics(self) -> dict[str, float]:
        """Numbers about the last ranking pass, stored with the run (``generation/<name>``),
        e.g. ``invalid_id_share`` of unconstrained decoding; a name with a ``/`` is stored
        as given (``selection/beta``: a value chosen on validation). Default: none."""
        return {}

    def trained_identifiers(self) -> ItemIdentifiers | None:
        """The identifiers after fitting, for recommenders paired with a *joint* tokenizer
        (they train its ``modules``); the harness requires them then. Default: ``None``."""
        return None

    def item_embeddings(self) -> np.ndarray | None:
        """Learnt item vectors in our item order, shape (n_items, d), or ``None``.

        The harness's CF-embedding service reads them from the configured CF method.
        """
        return None


@dataclass
class FitContext:
    """Services the harness offers while fitting.

    ``validate(recommender, limit=None)``: validation metrics (subset ``all``) on the
    validation cases, or on a fixed seeded sample of ``limit`` of them (the same sample
    for every method: list-generating models declare the size as a parameter);
    ``epoch_end(epoch, metrics)``: record an epoch and call the ``on_epoch_end`` hooks
    (Optuna pruning); ``text_embeddings()`` and ``cf_embeddings()``: shared item
    embeddings (see :mod:`benchmark.services`); ``cache_dir``: where to cache artifacts;
    ``keep_seen``: whether rankings keep the user's seen items (``--keep-seen``). The
    harness gives the embedding services as ``text_service`` and ``cf_service``
    (:func:`benchmark.runner.make_context`).
    """

    run: RunInfo
    seed: int
    profile: str
    cache_dir: str
    validate: Callable[..., dict[str, float]]
    epoch_end: Callable[[int, dict[str, float]], None]
    data: TrainingData | None = None
    progress: bool = True
    device: str = "cpu"
    keep_seen: bool = False

    text_service: Callable[..., np.ndarray] | None = None
    cf_service: Callable[[bool], np.ndarray | None] | None = None

    def text_embeddings(self, encoder: str = "minilm", params: dict[str, Any] | None = None) -> np.ndarray:
        """Every catalog item's text embedding from encoder plugin ``encoder`` (cached)."""
        return self._service(self.text_service)(encoder, params)

    def cf_embeddings(self, train: bool = True) -> np.ndarray | None:
        """CF item embeddings fitted on the training data only (cached by split digest).

        ``train=False`` returns ``None`` instead of fitting when nothing is cached.
        """
        return self._service(self.cf_service)(train)

    @staticmethod
    def _service(service: Callable | None) -> Callable:
        if service is None:
            raise ValueError("this FitContext was built without the harness's services; build it with "
                             "benchmark.runner.make_context")
        return service


@dataclass
class EvaluationInput:
    """What an evaluator plugin reads after the test ranking."""

    data: TrainingData
    test: Cases
    identifiers: ItemIdentifiers
    rankings: np.ndarray
    ranks: np.ndarray
    context: FitContext | None = None
    # The fitted recommender that produced ``rankings`` (an evaluator may rank again with it,
    # e.g. under another scoring, as a diagnostic; it must restore what it changes).
    recommender: Any = None


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset. ``load(argument)`` returns a :class:`RawDataset`.

    With ``takes_argument`` the user writes ``name:ARGUMENT`` (a path, a category);
    ``argument_required=False`` makes the argument optional.
    """

    name: str
    load: Callable[[str | None], RawDataset]
    description: str
    takes_argument: bool = False
    argument_help: str = ""
    argument_required: bool = True


@dataclass(frozen=True)
class EncoderSpec:
    """``factory(params)`` builds an :class:`Encoder`.

    ``width(params)``, optional, is the length of the vectors that encoder gives, found
    without loading a model (from its config file), or ``None`` when that is unknown: the
    harness checks cached embeddings against it (their rows always against the catalog),
    so a cache entry left by another model at the same path is rebuilt instead of used.
    """

    name: str
    factory: Callable[[dict[str, Any]], Encoder]
    description: str
    params: tuple[Param, ...] = ()
    width: Callable[[dict[str, Any]], int | None] | None = None


@dataclass(frozen=True)
class TokenizerSpec:
    """``factory(params, seed)`` builds a :class:`Tokenizer` producing ``kind`` identifiers.

    ``joint`` marks tokenizers trained together with their recommender (SETRec): ``fit``
    returns a starting point and the trainable ``modules``; the recommender trains them and
    must return the final identifiers from ``trained_identifiers()`` (the harness checks),
    which are the ones evaluated and stored. ``validate`` and ``version``: see
    :class:`RecommenderSpec`.
    """

    name: str
    factory: Callable[[dict[str, Any], int], Tokenizer]
    kind: str
    description: str
    params: tuple[Param, ...] = ()
    joint: bool = False
    validate: Callable[[dict[str, Any]], None] | None = None
    version: str = ""


@dataclass(frozen=True)
class RecommenderSpec:
    """``factory(params, seed)`` builds a :class:`Recommender` for identifier ``accepts``.

    ``validate(params)``, optional, checks the resolved parameters (typed, within their
    declared ``minimum``/``maximum``) for faults a declaration cannot express, such as a
    model name that does not exist, and raises
    :class:`~benchmark.errors.ParameterError` with one line naming the parameter and the
    mend. The harness calls it for every selected method when it resolves the method's
    parameters, before anything is fitted, so a fault fails in a second, not after hours of
    other methods' training. It must be cheap and must not fit, download or write anything.

    ``version`` marks behaviour: it enters the run key of every run using this spec, so a
    change of the version re-runs those rows and a refactor that keeps it does not. Bump it
    whenever the spec's results would change (``docs/hooks/README.md#versions-and-run-keys``).
    Empty (the default): the run key uses a hash of the registering plugin's source
    instead, so any edit of an unversioned plugin re-runs its rows.

    ``family`` groups methods on the leaderboards (``seq2seq``, ``SETRec``, ``LLM``...);
    a method marked ``baseline`` shows as ``baseline`` whatever its recommender. Empty:
    ``other``. It is a label only, never part of a run key.
    """

    name: str
    factory: Callable[[dict[str, Any], int], Recommender]
    accepts: frozenset[str]
    description: str
    params: tuple[Param, ...] = ()
    validate: Callable[[dict[str, Any]], None] | None = None
    version: str = ""
    family: str = ""


@dataclass(frozen=True)
class EvaluatorSpec:
    """``evaluate(input)`` returns extra named numbers stored with the run."""

    name: str
    evaluate: Callable[[EvaluationInput], Mapping[str, float]]
    description: str


@dataclass(frozen=True)
class MethodSpec:
    """A named tokenizer x recommender pairing with its defaults and search space.

    ``defaults`` and ``profiles[profile]`` use dotted keys (``recommender.epochs``).
    ``argument_param`` receives the ``ARG`` of ``name:ARG`` (``recbole:GRU4Rec``).
    ``search_space`` names the dotted parameters Optuna tunes; empty means every
    parameter that declares a range. ``baseline`` marks the reference methods that
    leaderboards test every other method against. ``version``: see :class:`RecommenderSpec`
    (defaults, profiles or search space changing results bump it).
    """

    name: str
    tokenizer: str
    recommender: str
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    search_space: tuple[str, ...] = ()
    argument_param: str | None = None
    paper: str = ""
    baseline: bool = False
    version: str = ""


def split_dotted(params: Mapping[str, Any], owner: str) -> tuple[dict, dict]:
    """Separate ``tokenizer.x`` / ``recommender.y`` keys into two dicts."""
    parts: dict[str, dict] = {"tokenizer": {}, "recommender": {}}
    for key, value in params.items():
        prefix, _, name = key.partition(".")
        if prefix not in parts or not name:
            raise ParameterError(
                f"{owner}: parameter {key!r} must start with 'tokenizer.' or 'recommender.'"
            )
        parts[prefix][name] = value
    return parts["tokenizer"], parts["recommender"]


def flatten(tokenizer: Mapping[str, Any], recommender: Mapping[str, Any]) -> dict[str, Any]:
    flat = {f"tokenizer.{k}": v for k, v in tokenizer.items()}
    flat.update({f"recommender.{k}": v for k, v in recommender.items()})
    return flat

