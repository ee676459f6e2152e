"""One run = dataset x split x method x params x seed x profile, evaluated and stored.

The runner reads the test cases exactly once, after fitting, for the final numbers.
Fitting sees :class:`~benchmark.components.TrainingData`, which has no test cases.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark import plugins, services
from benchmark.cache import default_cache
from benchmark.components import EvaluationInput, FitContext, ItemIdentifiers, RunInfo, TrainingData
from benchmark.data.dataset import PreparedDataset, prepare
from benchmark.data.splits import DEFAULT_MAX_HISTORY, Split, make_split, validation_sample
from benchmark.errors import PluginError
from benchmark.evaluation.evaluator import Evaluation, evaluate
from benchmark.methods import ResolvedMethod, resolve_method
from benchmark.nn.engine import release
from benchmark.preflight import check_methods, check_recommender

PACKAGES = ("torch", "transformers", "peft", "recbole", "cornac", "numpy", "pandas", "scipy", "optuna",
            "pluggy", "tabulate", "genrec-bench")


@dataclass
class RunRequest:
    """Everything that identifies a run; equal requests give equal numbers."""

    dataset: str
    split: str
    method: str
    seed: int = 0
    profile: str = "tiny"
    params: dict[str, Any] = field(default_factory=dict)
    keep_seen: bool = False
    k_core: int = 5
    max_history: int = DEFAULT_MAX_HISTORY


@functools.lru_cache(maxsize=8)
def load_dataset(name: str, k_core: int = 5) -> PreparedDataset:
    """Load and preprocess a dataset once per process."""
    spec, argument = plugins.get_dataset(name)
    prepared = prepare(spec.load(argument), k=k_core)
    prepared.name = name
    return prepared


@functools.lru_cache(maxsize=8)
def load_split(dataset: str, split: str, k_core: int = 5, max_history: int = DEFAULT_MAX_HISTORY) -> Split:
    return make_split(split, load_dataset(dataset, k_core), max_history)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def library_progress(progress: bool):
    """With ``progress=False``, silence for the block the progress bars that libraries print
    on their own (transformers' "Loading weights" bar of ``from_pretrained``, Hugging Face
    hub downloads), even when the block is what first imports transformers; the previous
    settings are restored after it. With ``progress=True`` nothing changes."""
    if progress:
        yield
        return
    try:
        from huggingface_hub import utils as hub
    except ImportError:  # no transformers either: nothing prints such bars
        yield
        return
    hub_was_off = hub.are_progress_bars_disabled()
    loaded = sys.modules.get("transformers.utils.logging")
    bars_were_on = loaded.is_progress_bar_enabled() if loaded is not None else None
    if not hub_was_off:
        hub.disable_progress_bars()  # transformers imported in the block starts with its bars off
    if loaded is not None:
        loaded.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging = sys.modules.get("transformers.utils.logging")
        if transformers_logging is not None:
            # Imported in the block: it would have started as the hub's bars were.
            on = (not hub_was_off) if bars_were_on is None else bars_were_on
            if on:
                transformers_logging.enable_progress_bar()
            else:
                transformers_logging.disable_progress_bar()
        # Last: transformers' switches set the hub's bars too.
        if hub_was_off:
            hub.disable_progress_bars()
        else:
            hub.enable_progress_bars()


def recommender_label(method: str) -> str:
    """How errors name the recommender of ``method``: ``method 'tiger' (recommender 'seq2seq')``."""
    spec = plugins.get_methods().get(method.removeprefix("cf:").partition(":")[0])
    return f"method {method!r} (recommender {spec.recommender!r})" if spec else f"method {method!r}"


def check_identifiers(identifiers: Any, n_items: int, kind: str, source: str) -> ItemIdentifiers:
    """``identifiers`` if they are :class:`ItemIdentifiers` of ``kind`` for all ``n_items``
    catalog items (codes: integers within their level's vocabulary; texts: one string each),
    else a :class:`PluginError` naming ``source`` (e.g. ``method 'm': tokenizer 't'``)."""
    if not isinstance(identifiers, ItemIdentifiers):
        raise PluginError(f"{source} returned {type(identifiers).__name__}, not ItemIdentifiers; return "
                          "benchmark.components.ItemIdentifiers(kind=..., n_items=data.n_items, ...)")
    if identifiers.kind != kind:
        raise PluginError(f"{source} returned {identifiers.kind!r} identifiers but declares kind {kind!r}; make "
                          "the spec's kind and the identifiers' kind agree")
    parts = {"codes": identifiers.codes, "text": identifiers.texts, "token_set": identifiers.token_sets}
    part = parts.get(kind)
    if kind != "atomic" and part is None:
        field = {"codes": "codes", "text": "texts", "token_set": "token_sets"}[kind]
        raise PluginError(f"{source} returned {kind!r} identifiers without {field}; fill ItemIdentifiers.{field}")
    counts = [identifiers.n_items] + ([len(part)] if part is not None else [])
    wrong = [count for count in counts if count != n_items]
    if wrong:
        raise PluginError(f"{source} returned identifiers for {wrong[0]} items, but the catalog has {n_items}; "
                          "return one identifier per catalog item, cold items included")
    if kind == "codes":
        codes = np.asarray(part)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise PluginError(f"{source} returned codes of shape {codes.shape} and type {codes.dtype}; return "
                              "integer codes of shape (n_items, levels)")
        vocab = tuple(identifiers.vocab_sizes)
        if len(vocab) != codes.shape[1]:
            raise PluginError(f"{source} returned codes of {codes.shape[1]} levels but {len(vocab)} vocab_sizes; "
                              "give one vocabulary size per level")
        for level, size in enumerate(vocab):
            outside = (codes[:, level] < 0) | (codes[:, level] >= size)
            if outside.any():
                raise PluginError(f"{source} returned code {codes[outside, level][0]} at level {level}, outside "
                                  f"its vocabulary 0..{size - 1} (vocab_sizes[{level}] = {size}); make vocab_sizes "
                                  "cover every code")
    if kind == "text" and not all(isinstance(text, str) for text in part):
        raise PluginError(f"{source} returned texts that are not all strings; give one str per item")
    return identifiers


def numbers(values: Any, source: str) -> dict[str, float]:
    """``values`` (a mapping of names to numbers) as floats; a :class:`PluginError` naming
    ``source`` (``evaluator 'x': evaluate()``) for anything else."""
    if not isinstance(values, Mapping):
        raise PluginError(f"{source} returned {type(values).__name__}, not a dict; return a dict of metric names "
                          "to numbers")
    result = {}
    for name, value in values.items():
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            result[str(name)] = float(value)
        except (TypeError, ValueError):
            raise PluginError(f"{source} returned {value!r} for {name!r}, not a number; return a dict of metric "
                              "names to numbers") from None
    return result


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> str:
    """Hardware in words, e.g. '2-core CPU, 24 GiB RAM (x86_64, AVX512 kernels)' or '1x NVIDIA H100,
    16-core CPU, 128 GiB RAM'."""
    cores = os.cpu_count() or 1
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        memory = f", {round(kib / 2**20)} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}, {cores}-core CPU{memory}"
    # The vector instructions torch's kernels use (AVX512, AVX2...): the same CPU count trains
    # at very different speeds, and rounds differently, on either.
    return f"{cores}-core CPU{memory} ({platform.machine()}, {torch.backends.cpu.get_cpu_capability()} kernels)"


@dataclass
class FittedRun:
    """A fitted tokenizer and recommender with what is needed to score them."""

    request: RunRequest
    method: ResolvedMethod
    split: Split
    data: TrainingData
    run: RunInfo
    identifiers: Any
    recommender: Any
    context: FitContext
    tokenizer_seconds: float
    train_seconds: float

    def validate(self) -> dict[str, float]:
        """Validation metrics (subset ``all``) of the fitted recommender."""
        return self.context.validate(self.recommender)


def make_context(
    run: RunInfo,
    data: TrainingData,
    cache_dir: str | Path,
    keep_seen: bool = False,
    progress: bool = True,
    hooks: bool = True,
) -> FitContext:
    """Fitting services for ``run``: validation on ``data``'s validation cases only, epoch
    records (and, with ``hooks``, the ``on_epoch_end`` hooks), shared embeddings, the cache."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)

    def validate(recommender, limit: int | None = None) -> dict[str, float]:
        cases = validation_sample(data.valid, limit)
        result = evaluate(recommender, cases, data.n_items, keep_seen, desc="validate", progress=False,
                          name=recommender_label(run.method))
        return {k: v for k, v in result.metrics["all"].items() if v is not None}

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        run.state.setdefault("epochs", []).append({"epoch": epoch, **metrics})
        if hooks:
            plugins.pm.hook.on_epoch_end(run=run, epoch=epoch, valid_metrics=metrics)

    context = FitContext(
        run=run,
        seed=run.seed,
        profile=run.profile,
        cache_dir=str(cache_dir),
        validate=validate,
        epoch_end=epoch_end,
        data=data,
        progress=progress,
        device="cuda" if torch.cuda.is_available() else "cpu",
        keep_seen=keep_seen,
    )
    context.text_service = functools.partial(services.text_embeddings, data, str(cache_dir), progress=progress)
    context.cf_service = functools.partial(services.cf_embeddings, data, context, make_context=make_context)
    return context


@dataclass
class FittedIdentifiers:
    """A method's tokenizer fitted on a split's training part, with the fitting context."""

    method: ResolvedMethod
    split: Split
    data: TrainingData
    run: RunInfo
    context: FitContext
    identifiers: Any
    seconds: float


def fit_identifiers(request: RunRequest, cache_dir: str | Path | None = None, progress: bool = True,
                    hooks: bool = True, method: ResolvedMethod | None = None) -> FittedIdentifiers:
    """Fit the method's tokenizer on the split's training part (seeded); ``method`` is the
    request's method already resolved (resolved here when not given)."""
    method = method or resolve_method(request.method, request.profile, request.params)
    split = load_split(request.dataset, request.split, request.k_core, request.max_history)
    # The command line checked these already; a caller of the Python API gets the same line.
    check_methods(split.dataset, {request.method: method})
    data = TrainingData.from_split(split)
    run = RunInfo(
        dataset=request.dataset,
        split=request.split,
        method=request.method,
        params=method.params,
        seed=request.seed,
        profile=request.profile,
        versions=method.versions,
    )
    if hooks:
        plugins.pm.hook.on_run_start(run=run)
    context = make_context(run, data, cache_dir or default_cache(), request.keep_seen, progress, hooks)
    seed_everything(request.seed)
    start = time.perf_counter()
    with library_progress(progress):
        identifiers = method.tokenizer.factory(method.tokenizer_params, request.seed).fit(data, context)
    check_identifiers(identifiers, data.n_items, method.tokenizer.kind,
                      f"method {request.method!r}: tokenizer {method.spec.tokenizer!r}")
    return FittedIdentifiers(method, split, data, run, context, identifiers, time.perf_counter() - start)


def fit(request: RunRequest, cache_dir: str | Path | None = None, progress: bool = True,
        method: ResolvedMethod | None = None) -> FittedRun:
    """Fit the method's tokenizer and recommender on the split's training part.

    Nothing here reads the test cases: fitting gets :class:`TrainingData`, and
    validation metrics come from the validation cases.
    """
    label = recommender_label(request.method)
    # fit_identifiers has refused a recommender that cannot serve (no fit, neither score nor
    # recommend) before the tokenizer's fit, on an instance built before anything is seeded.
    tokenized = fit_identifiers(request, cache_dir, progress, method=method)
    method, data, context = tokenized.method, tokenized.data, tokenized.context
    start = time.perf_counter()
    with library_progress(progress):
        recommender = method.recommender.factory(method.recommender_params, request.seed)
        check_recommender(recommender, label)
        recommender.fit(data, tokenized.identifiers, context)
    identifiers = tokenized.identifiers
    if method.tokenizer.joint:
        # A joint tokenizer's output was a starting point: evaluate what training made of it.
        identifiers = recommender.trained_identifiers()
        if identifiers is None:
            raise PluginError(
                f"method {request.method!r}: tokenizer {method.spec.tokenizer!r} is joint (trained with its "
                f"recommender), but recommender {method.spec.recommender!r} returned no trained_identifiers(); "
                "pair the tokenizer with a recommender that trains its modules")
        check_identifiers(identifiers, data.n_items, method.tokenizer.kind,
                          f"{label}: trained_identifiers()")
        identifiers.info = {**identifiers.info, "joint": True}
    # A fit resumed from its checkpoint spent part of its training in earlier processes.
    earlier = sum(t.get("seconds_before_resume", 0.0) for t in tokenized.run.state.get("training", {}).values())
    return FittedRun(request, method, tokenized.split, data, tokenized.run, identifiers, recommender,
                     context, tokenized.seconds, tokenized.seconds + time.perf_counter() - start + earlier)


def execute(
    request: RunRequest,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    method: ResolvedMethod | None = None,
    store_row: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], Evaluation, Split]:
    """Fit, evaluate on test once, and return the result row.

    ``store_row(row)``, when given, stores the row; the fits' finished checkpoints are
    deleted only after it returns (see :mod:`benchmark.nn.engine`), so a run killed while
    ranking the test cases, or while storing, reuses its fitted weights when run again.
    """
    fitted = fit(request, cache_dir, progress, method)
    split, data = fitted.split, fitted.data
    label = recommender_label(request.method)
    # The single read of the test cases.
    with library_progress(progress):
        result = evaluate(fitted.recommender, split.test, split.n_items, request.keep_seen,
                          desc=f"test {request.method}", progress=progress, name=label)
    # Diagnostics of the test ranking itself (e.g. the share of generated ids naming no item).
    diagnostics = numbers(fitted.recommender.diagnostics(), f"{label}: diagnostics()")
    extra: dict[str, float] = {(k if "/" in k else f"generation/{k}"): v for k, v in diagnostics.items()}
    evaluation_input = EvaluationInput(data, split.test, fitted.identifiers, result.rankings, result.ranks,
                                       fitted.context, fitted.recommender)
    for name, spec in plugins.get_evaluators().items():
        for metric, value in numbers(spec.evaluate(evaluation_input), f"evaluator {name!r}: evaluate()").items():
            extra[f"{name}/{metric}"] = value
    info = {"epochs": fitted.run.state.get("epochs", []), "split": split.info,
            "identifiers": fitted.identifiers.info, "baseline": fitted.method.spec.baseline,
            "family": plugins.method_family(request.method),
            "k_core": request.k_core, "max_history": request.max_history,
            "code_hashes": fitted.method.versions}
    if fitted.run.state.get("training"):
        info["training"] = fitted.run.state["training"]
    if fitted.method.key_params != fitted.method.params:
        info["key_params"] = fitted.method.key_params
    row = {
        "dataset": request.dataset,
        "split": request.split,
        "split_digest": split.digest,
        "method": request.method,
        "params": fitted.method.params,
        "seed": request.seed,
        "profile": request.profile,
        "exclude_seen": not request.keep_seen,
        "backbone": fitted.recommender.backbone(),
        "metrics": result.metrics,
        "valid_metrics": fitted.validate(),
        "extra_metrics": extra,
        "ranks": result.ranks.tolist(),
        "case_labels": split.test.labels(),
        "train_seconds": fitted.train_seconds,
        "tokenizer_seconds": fitted.tokenizer_seconds,
        "infer_seconds_per_1k": result.seconds_per_1000,
        "info": info,
        "package_versions": package_versions(),
        "plugin_versions": plugins.plugin_versions(),
        "machine": machine(),
    }
    plugins.pm.hook.on_run_end(run=fitted.run, result=row)
    if store_row is not None:
        store_row(row)
    release(fitted.run)
    return row, result, split


def save_rankings(path: str | Path, split: Split, evaluation: Evaluation, method: str, seed: int) -> None:
    """JSON lines: one test case each, in the dataset's own user and item ids."""
    data = split.dataset
    masks = split.test.masks()
    names = [n for n in masks if n != "all"]
    with open(path, "a") as f:
        for i in range(len(split.test)):
            top = [data.item_ids[j] for j in evaluation.rankings[i] if j >= 0]
            record = {
                "method": method,
                "seed": seed,
                "split": split.name,
                "user": str(data.user_ids[split.test.users[i]]),
                "target": str(data.item_ids[split.test.targets[i]]),
                "target_timestamp": float(split.test.timestamps[i]),
                "subsets": [n for n in names if masks[n][i]],
                "top20": [str(t) for t in top],
            }
            f.write(json.dumps(record) + "\n")
