"""Inspect a tokenizer without a recommender: fit it on a split and diagnose its identifiers.

``genrec-bench inspect tokenizer --dataset ml-100k --tokenizer letter`` prints what
:func:`inspect_tokenizer` returns: codebook utilisation and entropy per level, collision
rates before and after the collision level, the CF-neighbour code overlap LETTER reports
(Table 4 of ``papers/letter.txt``) and the fitting time.
"""

from __future__ import annotations

import time
from typing import Any

from benchmark import plugins
from benchmark.components import RunInfo, TrainingData
from benchmark.errors import BenchmarkError, PluginError
from benchmark.evaluation.identifier_diagnostics import diagnose
from benchmark.params import resolve
from benchmark.runner import library_progress, load_split, make_context, seed_everything


def inspect_tokenizer(
    dataset: str,
    tokenizer: str,
    split: str = "loo",
    params: dict | None = None,
    profile: str = "tiny",
    seed: int = 0,
    cache_dir: str = "runs/cache",
    progress: bool = True,
) -> dict[str, Any]:
    """Fit ``tokenizer`` on the training part of ``dataset``/``split`` and diagnose its ``codes``.

    ``params`` are the tokenizer's own (no ``tokenizer.`` prefix). The CF-neighbour overlap
    needs the harness's CF item embeddings (:mod:`benchmark.services`): when they are not
    cached under ``cache_dir`` this fits the CF method on the training part (validation
    cases pick its epoch, as in a run). Returns the flat
    diagnostics of :func:`benchmark.evaluation.identifier_diagnostics.diagnose` plus ``fit_seconds``.
    """
    specs = plugins.get_tokenizers()
    if tokenizer not in specs:
        raise PluginError(f"unknown tokenizer {tokenizer!r}; known tokenizers: {', '.join(sorted(specs))}")
    spec = specs[tokenizer]
    plugins.check_profile(profile)
    resolved = resolve(spec.params, profile, params, f"tokenizer {tokenizer!r}")
    if spec.validate is not None:
        spec.validate(resolved)
    loaded = load_split(dataset, split)
    data = TrainingData.from_split(loaded)
    run = RunInfo(dataset=dataset, split=split, method=f"inspect:{tokenizer}",
                  params={f"tokenizer.{k}": v for k, v in resolved.items()}, seed=seed, profile=profile)
    # Tokenizers do not validate; SASRec, trained for the CF embeddings, does, as in a run.
    context = make_context(run, data, cache_dir, progress=progress)
    seed_everything(seed)
    start = time.perf_counter()
    with library_progress(progress):
        identifiers = spec.factory(resolved, seed).fit(data, context)
    fit_seconds = time.perf_counter() - start
    if identifiers.kind != "codes":
        raise BenchmarkError(
            f"tokenizer {tokenizer!r} makes {identifiers.kind!r} identifiers; inspect diagnoses 'codes' only"
        )
    with library_progress(progress):
        cf = context.cf_embeddings()
    result = diagnose(identifiers, cf, data.train_counts > 0)
    result["fit_seconds"] = fit_seconds
    return result
