"""Shared services offered to plugins while fitting: item text embeddings and CF item embeddings.

A plugin never imports another plugin: a tokenizer that needs text embeddings (TIGER's
RQ-VAE) or collaborative item embeddings (LETTER, SETRec) asks its
:class:`~benchmark.components.FitContext`, and the harness answers through the
registered encoder and method plugins.

- **Text embeddings**: every catalog item's text (:meth:`ItemCatalog.texts`) encoded by a
  registered encoder plugin, cached by a hash of the texts, the encoder and its parameters.
  A cached entry must hold one row of finite floats per item, as wide as the encoder's
  declared ``width`` (when it declares one); any other is rebuilt with one warning line. An
  encoder whose ``encode`` returns another shape stops the run naming it, caching nothing.
- **CF embeddings**: the item table of the CF method (default ``sasrec-ce``; set
  ``GENREC_BENCH_CF_METHOD`` to another method whose recommender implements
  ``item_embeddings()``), fitted on the training data only with seed 0 and validation-
  based early stopping, cached by the split digest, the method's parameters and its
  plugins' code hashes. Its epochs are recorded apart: they never reach the caller's
  ``on_epoch_end`` hooks (an Optuna pruner of the caller never sees them). A cached table
  must hold one row of finite floats per item (else it is refitted, with a warning).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import plugins
from benchmark.cache import artifact_path, content_hash, float_rows, load_array, save_array
from benchmark.components import FitContext, ItemIdentifiers, RunInfo, TrainingData
from benchmark.errors import PluginError
from benchmark.methods import ResolvedMethod, resolve_method
from benchmark.params import resolve

DEFAULT_CF_METHOD = "sasrec-ce"
CF_METHOD_ENV = "GENREC_BENCH_CF_METHOD"
CF_SEED = 0


def text_embeddings(
    data: TrainingData,
    cache_dir: str | Path,
    encoder: str = "minilm",
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Text embeddings of every catalog item (cold items included), shape (n_items, dim)."""
    specs = plugins.get_encoders()
    if encoder not in specs:
        raise PluginError(f"unknown encoder {encoder!r}; known encoders: {', '.join(sorted(specs))}")
    spec = specs[encoder]
    resolved = resolve(spec.params, "tiny", params, f"encoder {encoder!r}")
    texts = data.catalog.texts()
    path = artifact_path(cache_dir, "text", encoder, resolved, content_hash(texts))
    width = spec.width(resolved) if spec.width is not None else None
    cached = load_array(path, float_rows(len(texts), width))
    if cached is not None:
        return cached
    model = spec.factory(resolved)
    embeddings = model.encode(texts, progress=progress)
    check_vectors(embeddings, len(texts), width if width is not None else getattr(model, "dim", None),
                  f"encoder {encoder!r}: encode()", "texts", "return one row of dim = {width} floats per text")
    save_array(path, embeddings)
    return embeddings


def check_vectors(vectors: Any, rows: int, width: int | None, source: str, what: str, mend: str,
                  kinds: str = "f") -> np.ndarray:
    """``vectors`` if they are a 2-D array of finite numbers (of numpy kinds ``kinds``: floats)
    with ``rows`` rows (``width`` columns when given), else a :class:`PluginError` naming
    ``source`` and the ``mend`` (formatted with ``width``)."""
    mend = mend.format(width=width if width is not None else "d")
    try:
        array = np.asarray(vectors)
    except (ValueError, TypeError, RuntimeError) as error:
        found = "rows of different lengths" if "inhomogeneous" in str(error) else "no array"
        raise PluginError(f"{source} returned {found} ({str(error).splitlines()[0].split('. ')[0]}); {mend}") \
            from None
    if array.ndim != 2 or len(array) != rows or (width is not None and array.shape[1] != width):
        raise PluginError(f"{source} returned shape {array.shape} for {rows} {what}; {mend}")
    if array.dtype.kind not in kinds or not np.isfinite(array).all():
        wanted = "floats" if kinds == "f" else "numbers"
        raise PluginError(f"{source} returned {array.dtype} values, not all finite {wanted}; {mend}")
    return array


def cf_method() -> str:
    return os.environ.get(CF_METHOD_ENV) or DEFAULT_CF_METHOD


def cf_cache_path(data: TrainingData, context: FitContext, method: ResolvedMethod | None = None) -> Path:
    """Where the CF embeddings for ``data``'s training part live (method, params, versions included);
    ``method``: the CF method already resolved for ``context.profile``."""
    method = method or resolve_method(cf_method(), context.profile)
    return artifact_path(context.cache_dir, "cf", data.digest, cf_method(), method.params, context.profile,
                         method.versions, CF_SEED)


def cf_embeddings(data: TrainingData, context: FitContext, train: bool = True, *,
                  make_context: Callable[..., FitContext]) -> np.ndarray | None:
    """Item embeddings (n_items, d) of the CF method fitted on ``data``'s training part.

    With ``train=False`` only a cached table is returned (``None`` when absent), so an
    evaluator never trains a model. ``make_context`` builds the CF fit's own context (the
    runner's :func:`~benchmark.runner.make_context`).
    """
    name = cf_method()
    method = resolve_method(name, context.profile)
    path = cf_cache_path(data, context, method)
    cached = load_array(path, float_rows(data.n_items))
    if cached is not None or not train:
        return cached
    run = RunInfo(dataset=context.run.dataset, split=context.run.split, method=f"cf:{name}",
                  params=method.params, seed=CF_SEED, profile=context.profile, versions=method.versions)
    # Its own context: epochs are recorded in its RunInfo and reach no lifecycle hook.
    own = make_context(run, data, context.cache_dir, keep_seen=context.keep_seen, progress=context.progress,
                       hooks=False)
    identifiers: ItemIdentifiers = method.tokenizer.factory(method.tokenizer_params, CF_SEED).fit(data, own)
    recommender = method.recommender.factory(method.recommender_params, CF_SEED)
    recommender.fit(data, identifiers, own)
    table = recommender.item_embeddings()
    if table is None:
        raise PluginError(
            f"CF method {name!r}: its recommender {method.spec.recommender!r} gives no item_embeddings(); "
            f"set {CF_METHOD_ENV} to a method whose recommender does (e.g. {DEFAULT_CF_METHOD})"
        )
    table = check_vectors(table, data.n_items, None, f"CF method {name!r}: recommender {method.spec.recommender!r}'s "
                          "item_embeddings()", "items", "return one row of d floats per catalog item, shape "
                          "(n_items, d)", kinds="fiu").astype(np.float32)
    save_array(path, table)
    return table
