"""Every hook a genrec-bench plugin can implement. These docstrings are the API reference.

Registration hooks receive a ``register`` callback; call it once per component with a
spec from :mod:`benchmark.components`. Lifecycle hooks observe (and may stop) runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from benchmark.components import (
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    MethodSpec,
    RecommenderSpec,
    RunInfo,
    TokenizerSpec,
)

PROJECT = "genrec_bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- data


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register named datasets.

    Call ``register(DatasetSpec(name, load, description))``; ``load(argument)`` returns a
    :class:`~benchmark.data.dataset.RawDataset` (interactions + item text). With
    ``takes_argument=True`` users write ``name:ARGUMENT`` (a path or a category).
    Loading errors must raise :class:`~benchmark.errors.DatasetError` naming the file,
    line and field at fault.
    """


@hookspec
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register text encoders that turn item content into vectors.

    Call ``register(EncoderSpec(name, factory, description, params))``; ``factory(params)``
    returns an object with ``dim`` and ``encode(texts) -> np.ndarray``.
    """


# --------------------------------------------------------------------------- models


@hookspec
def register_tokenizers(register: Callable[[TokenizerSpec], None]) -> None:
    """Register item tokenizers (identifier builders).

    Call ``register(TokenizerSpec(name, factory, kind, description, params))``;
    ``factory(params, seed).fit(data, context)`` returns
    :class:`~benchmark.components.ItemIdentifiers` of ``kind`` for every catalog item,
    fitted on training interactions only (``data`` holds no test cases).
    """


@hookspec
def register_recommenders(register: Callable[[RecommenderSpec], None]) -> None:
    """Register recommenders.

    Call ``register(RecommenderSpec(name, factory, accepts, description, params))``;
    ``factory(params, seed)`` returns a :class:`~benchmark.components.Recommender`
    subclass that accepts identifiers of the kinds in ``accepts``. It ranks by
    ``score`` (whole catalog at once) or ``recommend`` (own top-k lists).
    """


@hookspec
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Register methods: named tokenizer x recommender pairings.

    Call ``register(MethodSpec(name, tokenizer, recommender, description, defaults,
    profiles, search_space))``. Defaults and profile overrides use dotted keys such as
    ``recommender.epochs``. The pairing is checked at load: the recommender must accept
    the tokenizer's identifier kind.
    """


# --------------------------------------------------------------------------- evaluation


@hookspec
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register evaluators that add numbers to every run.

    Call ``register(EvaluatorSpec(name, evaluate, description))``; ``evaluate(input)``
    receives an :class:`~benchmark.components.EvaluationInput` (training data, test cases,
    identifiers, rankings) and returns ``{metric_name: value}``. Names are stored as
    ``<evaluator>/<metric>``.
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def on_run_start(run: RunInfo) -> None:
    """Called before a run fits anything. ``run`` names dataset, split, method, seed."""


@hookspec
def on_epoch_end(run: RunInfo, epoch: int, valid_metrics: dict[str, Any]) -> None:
    """Called after each training epoch with validation metrics (``ndcg@10``...).

    Raise an exception to stop the run (Optuna pruning raises ``TrialPruned`` here).
    """


@hookspec
def on_run_end(run: RunInfo, result: dict[str, Any]) -> None:
    """Called after a run is evaluated and stored; ``result`` is the stored row."""
