"""Training throughput in fp32 and bf16 autocast, and what each precision reaches.

Two measurements, both in one process on the CPU (or GPU) it runs on:

1. **Throughput**: optimiser steps (forward, backward, AdamW) of the real recommenders'
   losses on ml-100k ``loo`` training prefixes, the same batch in both precisions, the two
   precisions interleaved step by step so that the machine's drift weighs on both alike.
   Models: the ``tiny`` T5 of seq2seq (2+2 layers, d128), the TIGER-size T5 (4+4 layers,
   6 heads of 64, MLP 1024) and the ``tiny`` decoder of the ``llm`` recommender (2 layers,
   d128, MiniLM's vocabulary plus the code tokens). Identifiers are random 4-level codes
   of 256 entries per level (throughput does not depend on which codes an item has).
2. **Quality**: a short fit on the synthetic dataset (``loo``, seed 0) per precision for
   the two tiny models, through ``genrec-bench``'s runner, and the best validation NDCG@10
   it reached (the TIGER-size T5 is timed only: its bf16 fit takes a quarter of an hour on a CPU
   without bf16 arithmetic).

Results go to ``leaderboards/training-speed.md`` exactly as measured, in one marked block per
kind of CPU kernels (``training_speed-avx2``, ``training_speed-avx512``, ...): bf16 is several
times slower than fp32 where the CPU has no bf16 arithmetic and faster where it has (AVX512-BF16,
AMX), so a run on one machine keeps the other machines' results. Run from the
repository root: ``.venv/bin/python benchmarks/training_speed.py`` (``--quick`` for a
smoke run that writes nothing).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from _blocks import write_block  # benchmarks/, on the path when run as a script
from tabulate import tabulate

from benchmark.components import ItemIdentifiers, TrainingData
from benchmark.methods import resolve_method
from benchmark.nn.sequences import training_prefixes
from benchmark.runner import RunRequest, execute, load_split, machine, package_versions

ROOT = Path(__file__).resolve().parents[1]
TIGER_SIZE = {"recommender.layers": 4, "recommender.heads": 6, "recommender.head_dim": 64, "recommender.d_ff": 1024}
MODELS = {
    # name: (method, parameter overrides, batch size, with a short synthetic fit)
    "T5 tiny (2+2, d128)": ("tiger", {}, 256, True),
    "T5 TIGER-size (4+4, d128, 6x64, MLP 1024)": ("tiger", TIGER_SIZE, 256, False),
    "decoder tiny (2 layers, d128)": ("lcrec", {"recommender.tasks": "seq"}, 64, True),
}


def random_codes(n_items: int, seed: int = 0) -> ItemIdentifiers:
    codes = np.random.default_rng(seed).integers(0, 256, (n_items, 4))
    codes[:, 3] = np.arange(n_items) % 256  # distinct identifiers, as after the collision level
    return ItemIdentifiers(kind="codes", n_items=n_items, codes=codes, vocab_sizes=(256, 256, 256, 256))


def loss_function(method: str, overrides: dict, batch: int, data: TrainingData):
    """A fresh model of ``method`` and a function giving the loss of one fixed batch."""
    resolved = resolve_method(method, "tiny", {**overrides, "recommender.batch_size": batch})
    recommender = resolved.recommender.factory(resolved.recommender_params, 0)
    recommender.device = torch.device("cpu")
    identifiers = random_codes(data.n_items)
    rows = training_prefixes(data.train, 0, 0, 0, "benchmark")[:batch]
    if method == "lcrec":
        recommender._build(identifiers, data)
        cap = data.max_history
        samples = [("seq", data.train[u][max(0, t - cap):t], int(data.train[u][t])) for u, t in rows]
        return recommender.model, lambda: recommender._loss(samples)
    recommender._build(identifiers)
    tensors = recommender._batch(data, rows)
    return recommender.model, lambda: recommender._loss(*tensors)


def throughput(method: str, overrides: dict, batch: int, data: TrainingData, steps: int) -> dict[str, float]:
    """Median samples/s per precision, the precisions interleaved step by step."""
    models = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model, loss_of = loss_function(method, overrides, batch, data)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        models[precision] = (model, loss_of, optimizer)
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for step in range(steps + 1):
        for precision, (model, loss_of, optimizer) in models.items():
            model.train()
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext():
                loss = loss_of()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step:  # the first step of each warms caches up
                seconds[precision].append(time.perf_counter() - start)
    return {p: batch / statistics.median(s) for p, s in seconds.items()}


def short_fit(method: str, overrides: dict, precision: str, epochs: int, cache: str) -> dict:
    params = {**overrides, "recommender.epochs": epochs, "recommender.patience": epochs,
              "recommender.precision": precision}
    start = time.perf_counter()
    row, _, _ = execute(RunRequest("synthetic", "loo", method, params=params), cache, progress=False)
    curve = [e["ndcg@10"] for e in row["info"]["epochs"]]
    return {"best": max(curve), "curve": curve, "seconds": time.perf_counter() - start}


TITLE = ("# Training throughput: fp32 against bf16 autocast\n\nWritten by `benchmarks/training_speed.py` (one "
         "block per kind of CPU kernels) and `benchmarks/family_throughput.py` (its own blocks); numbers are as "
         "measured, never edited.\n\n")


def native_bf16() -> str:
    """The CPU's bf16 arithmetic instructions (``avx512_bf16``, ``amx_bf16``) from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return ""
    return ", ".join(flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per precision and model")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each short synthetic fit")
    parser.add_argument("--quick", action="store_true", help="1 step, 1 epoch, nothing written")
    parser.add_argument("--out", default=str(ROOT / "leaderboards" / "training-speed.md"))
    args = parser.parse_args()
    steps, epochs = (1, 1) if args.quick else (args.steps, args.epochs)
    torch.set_num_threads(1)
    started = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    data = TrainingData.from_split(load_split("ml-100k", "loo"))
    speed, quality = [], []
    with tempfile.TemporaryDirectory() as cache:
        for name, (method, overrides, batch, with_fit) in MODELS.items():
            rates = throughput(method, overrides, batch, data, steps)
            speed.append([name, batch, f"{rates['fp32']:.1f}", f"{rates['bf16']:.1f}",
                          f"{rates['bf16'] / rates['fp32']:.2f}"])
            print(speed[-1], flush=True)
            if not with_fit:  # its bf16 fit would take a quarter of an hour at the rates above
                continue
            fits = {p: short_fit(method, overrides, p, epochs, cache) for p in ("fp32", "bf16")}
            quality.append([name, method, epochs, f"{fits['fp32']['best']:.4f}", f"{fits['bf16']['best']:.4f}",
                            f"{fits['fp32']['seconds']:.0f}", f"{fits['bf16']['seconds']:.0f}"])
            print(quality[-1], flush=True)
    if args.quick:
        return
    end_load = os.getloadavg()
    versions = package_versions()
    capability = torch.backends.cpu.get_cpu_capability()
    lines = [
        f"## {capability} kernels",
        "",
        f"- command: `{' '.join(['.venv/bin/python', 'benchmarks/training_speed.py', *sys.argv[1:]])}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}, one thread (`torch.set_num_threads(1)`); bf16 arithmetic in the CPU: "
        f"{native_bf16() or 'none found'}",
        f"- load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in load)}; at end: "
        f"{', '.join(f'{x:.2f}' for x in end_load)}",
        "- packages: " + ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "genrec-bench")),
        f"- throughput: the median of {steps} optimiser steps (forward, backward, AdamW) per precision on the "
        "same ml-100k `loo` batch, the precisions interleaved step by step, after one warm-up step each",
        f"- quality: a {epochs}-epoch fit on `synthetic` `loo`, seed 0, `tiny` profile otherwise, validation "
        "NDCG@10 of the best epoch (the test cases are not read for this table)",
        "",
        "### Samples per second",
        "",
        tabulate(speed, headers=["model", "batch", "fp32", "bf16", "bf16 / fp32"], tablefmt="github"),
        "",
        "### Short synthetic fit",
        "",
        tabulate(quality, headers=["model", "method", "epochs", "fp32 best valid NDCG@10",
                                   "bf16 best valid NDCG@10", "fp32 fit s", "bf16 fit s"], tablefmt="github"),
    ]
    out = Path(args.out)
    if not out.exists() or not out.read_text(encoding="utf-8").startswith("# "):
        out.write_text(TITLE + (out.read_text(encoding="utf-8") if out.exists() else ""), encoding="utf-8")
    # The page's other blocks (other machines, family_throughput.py's) stay as they are.
    write_block(out, f"training_speed-{capability.lower()}", "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
