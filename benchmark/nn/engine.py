"""The training engine: one loop for every neural recommender and trained tokenizer.

A model hands the engine its batches, its loss and (optionally) its validation; the engine
owns everything else, declared once in :data:`ENGINE_PARAMS`:

- **AdamW** on the model's trainable parameters, gradients clipped at norm 1;
- **a schedule counted in optimiser steps**: a linear warm-up over ``warmup`` of the step
  budget, then ``cosine`` decay to zero over ``schedule_steps`` steps (0: ``epochs`` x
  steps per epoch, which ties the decay to the epoch cap) or a ``constant`` rate;
- **validation** every ``validate_every`` epochs (and at the last one), **early stopping**
  after ``patience`` validations without gain of the metric, with the best weights
  restored; caps on ``epochs`` and on ``max_train_seconds`` of wall time;
- **a checkpoint after every validation** (weights, optimiser, scheduler, RNG states,
  stopper, epoch records, seconds) in the run's cache, written to a temporary file and
  renamed: a fit killed at any moment, SIGKILL included, resumes from its last checkpoint
  and ends with the weights an uninterrupted fit would have. When the fit ends, the file
  becomes a *finished* checkpoint (the chosen weights, the records, the random states): a
  run killed after its fits, while ranking the test cases say, reuses them without
  training again. :func:`release` deletes a run's checkpoints once its row is stored (the
  runner does);
- **precision**: ``fp32``, or ``bf16`` autocast of the forward pass and loss (CPU and CUDA);
- a progress bar counting samples, with samples/s and ETA;
- each validated epoch's record (validation metrics, mean loss, seconds and the part of
  them spent validating, samples seen, learning rate) goes to ``context.epoch_end`` and so
  to the stored run: ``samples / (seconds - valid_seconds)`` is the fit's training
  throughput.

A model that declares fewer of these parameters (a tokenizer without validation, say)
trains with the declared defaults for the rest.
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sized
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.cache import artifact_path, discard_unreadable
from benchmark.errors import ParameterError
from benchmark.params import Param

SCHEDULES = ("cosine", "constant")
PRECISIONS = ("fp32", "bf16")
CHECKPOINT_FORMAT = 1

# ``cpu`` (the boards): a constant rate after a 50-step warm-up (5% of 1,000 schedule
# steps), so no epoch cap decides where the rate ends; the rate is tiny's 3e-3 (at 1e-3 a
# d64 TIGER reached validation NDCG@10 0.027 after four epochs, 75k samples, where tiny's
# T5 at 3e-3 had 0.047 after one pass of 96k); validation every epoch on every validation
# case, patience 10 (with 5, a d64 TIGER stopped at epoch 13 on a noisy plateau, validation
# NDCG@10 .057, where another seed went on rising to .082 at epoch 31), an epoch cap no
# board row reaches and an eight-hour guard reported when it binds (two fits share the
# 2-core CPU, so an epoch takes up to twice its idle time).
CPU_SCHEDULE = {"schedule": "constant", "schedule_steps": 1000}
ENGINE_PARAMS = (
    Param("learning_rate", float, 1e-3, "peak AdamW learning rate (after the linear warm-up)",
          profiles={"tiny": 3e-3, "cpu": 3e-3}, minimum=0.0, low=5e-4, high=1e-2, log=True),
    Param("weight_decay", float, 0.01, "AdamW weight decay", minimum=0.0, low=1e-4, high=0.1, log=True),
    Param("warmup", float, 0.05, "share of the schedule's steps spent warming up linearly", minimum=0.0,
          maximum=1.0),
    Param("schedule", str, "cosine", "after the warm-up: cosine (decay to zero over schedule_steps) or "
          "constant", unkeyed_default=True, profiles={"cpu": CPU_SCHEDULE["schedule"]}, options=SCHEDULES),
    Param("schedule_steps", int, 0, "optimiser steps of the warm-up + cosine schedule (0: epochs x steps "
          "per epoch, so the decay ends at the epoch cap); the warm-up is warmup x this many steps",
          minimum=0, unkeyed_default=True, profiles={"cpu": CPU_SCHEDULE["schedule_steps"]}),
    Param("batch_size", int, 256, "training samples per optimiser step", minimum=1),
    Param("epochs", int, 200, "maximum training epochs", profiles={"tiny": 4, "cpu": 200}, minimum=1),
    Param("patience", int, 10, "validations without gain of validation NDCG@10 before stopping",
          profiles={"tiny": 2, "cpu": 10}, minimum=1),
    Param("validate_every", int, 1, "epochs between validations (the last epoch is always validated)",
          minimum=1, unkeyed_default=True),
    Param("max_train_seconds", float, 0.0, "stop training after this many seconds (0: no cap); the epoch "
          "running then is validated first", minimum=0.0, unkeyed_default=True, profiles={"cpu": 28800.0}),
    Param("precision", str, "fp32", "fp32, or bf16 (autocast of the forward pass and loss, CPU or CUDA)",
          unkeyed_default=True, options=PRECISIONS),
    Param("device", str, "auto", "auto (cuda when available), cpu or cuda", options=("auto", "cpu", "cuda")),
)
_DECLARED = {p.name: p for p in ENGINE_PARAMS}


def engine_param(name: str, **changes: Any) -> Param:
    """The engine's declaration of ``name`` with other defaults, help or ranges, for a model
    whose samples differ (a tokenizer stepping over items, say): the name and meaning stay
    the engine's."""
    return replace(_DECLARED[name], **changes)


def setting(params: dict[str, Any], name: str) -> Any:
    """``params[name]``, or the engine's declared default when the model does not declare it."""
    return params[name] if name in params else _DECLARED[name].default


def pick_device(choice: str, context_device: str, owner: str) -> torch.device:
    """``auto`` (the fit context's device), ``cpu`` or ``cuda`` (refused without CUDA)."""
    if choice == "auto":
        return torch.device(context_device or "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"{owner}: device=cuda but no CUDA device is available; use auto or cpu")
    return torch.device(choice)


def schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int,
             warmup_share: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_share`` of ``total_steps``, then cosine decay to zero at
    ``total_steps`` (and zero after it) or, with ``kind='constant'``, the peak rate."""
    warmup = max(1, int(warmup_share * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EarlyStopping:
    """Keep the best weights by a validation metric; stop after ``patience`` validations
    without gain. The best weights stay in memory, so the weights kept are the ones
    validation chose, never the last ones."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = -float("inf")
        self.best_epoch = -1
        self.flat = 0
        self.state: dict | None = None

    def step(self, value: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record one validation; True when training should stop."""
        if value > self.best:
            self.best, self.best_epoch, self.flat = value, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.flat += 1
        return self.flat >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


@dataclass
class TrainingResult:
    """How a fit ended: epochs run, the chosen epoch (0-based; -1 without validation), why
    it stopped (``patience``, ``epoch cap`` or ``time cap``), the validated epochs' records
    and the wall time (summed over resumed attempts)."""

    epochs: int
    best_epoch: int
    stop_reason: str
    records: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int | None = None
    seconds_before_resume: float = 0.0  # the part of ``seconds`` earlier processes spent

    @property
    def best_record(self) -> dict[str, float]:
        return next(r for r in self.records if r["epoch"] == self.best_epoch)

    def summary(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "stop_reason": self.stop_reason,
                "seconds": round(self.seconds, 3), "resumed_from": self.resumed_from,
                "seconds_before_resume": round(self.seconds_before_resume, 3)}


def checkpoint_path(context, name: str) -> Path:
    """Where the fit ``name`` of the run of ``context`` keeps its checkpoint."""
    run = context.run
    digest = context.data.digest if context.data is not None else ""
    return artifact_path(context.cache_dir, "checkpoints", run.dataset, run.split, digest, run.method, run.params,
                         run.seed, run.profile, run.versions, context.keep_seen, name, suffix=".pt")


def rng_states() -> dict[str, Any]:
    """The process's random states (torch, numpy's global, python's, CUDA's) for a checkpoint."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def checkpoint_identity(context, name: str) -> dict[str, Any]:
    """Which fit a checkpoint belongs to, for people and `genrec-bench checkpoints` (the file's
    name, a hash of the run, is what resuming reads)."""
    run = context.run
    return {"dataset": run.dataset, "split": run.split, "method": run.method, "seed": run.seed,
            "profile": run.profile, "fit": name}


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back the random states :func:`rng_states` took."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file, then renamed)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``; ``None`` where there is none, or an unreadable one (set aside)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        return state
    except Exception as error:  # a half-copied or foreign file: refit from the start
        discard_unreadable(path, error)
        return None


def train(model: torch.nn.Module, params: dict[str, Any], context, name: str, samples_per_epoch: int,
          epoch_batches: Callable[[int], Iterable[Sized]], loss_of: Callable[[Any], torch.Tensor],
          validate: Callable[[], dict[str, float]] | None = None, metric: str = "ndcg@10",
          checkpoints: bool = True) -> TrainingResult:
    """Train ``model`` with the engine's parameters in ``params`` (see the module docstring).

    ``epoch_batches(epoch)`` yields the epoch's batches (each with a length: its samples)
    and must depend on ``epoch`` and the seed only, so a resumed fit sees the same batches;
    ``loss_of(batch)`` is the batch's loss, or a dict of named parts whose ``loss`` is trained
    (every part's epoch mean is recorded); ``validate()`` returns validation metrics with
    ``metric`` (higher is better): early stopping and the epoch records use it. Without
    ``validate`` every epoch runs and is checkpointed, no record reaches
    ``context.epoch_end`` and the last weights are kept. The model is left in eval mode and
    the summary goes to ``context.run.state['training'][name]``.
    """
    epochs, batch_size = setting(params, "epochs"), setting(params, "batch_size")
    steps = max(1, math.ceil(samples_per_epoch / batch_size))
    every, cap = setting(params, "validate_every"), setting(params, "max_train_seconds")
    parameters = [x for x in model.parameters() if x.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=setting(params, "learning_rate"),
                                  weight_decay=setting(params, "weight_decay"))
    scheduler = schedule(optimizer, setting(params, "schedule"),
                         setting(params, "schedule_steps") or steps * epochs, setting(params, "warmup"))
    stopper = EarlyStopping(setting(params, "patience"))
    device = next(iter(parameters)).device if parameters else torch.device("cpu")
    bf16 = setting(params, "precision") == "bf16"
    records: list[dict[str, float]] = []
    path = checkpoint_path(context, name) if checkpoints else None
    first, seconds, samples, resumed, valid_seconds = 0, 0.0, 0, None, 0.0
    saved = load_checkpoint(path) if path is not None else None
    if saved is not None and saved.get("finished") is not None:
        return _reuse_finished(model, saved, context, name, path, validate is not None)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        stopper.__dict__.update(saved["stopper"])
        records, seconds, samples = saved["records"], saved["seconds"], saved["samples"]
        valid_seconds = records[-1].get("valid_seconds", 0.0) if records else 0.0
        first = resumed = saved["epoch"] + 1
        set_rng_states(saved["rng"])
        print(f"{name}: resuming from the checkpoint after epoch {saved['epoch']} ({path})", file=sys.stderr,
              flush=True)
        replay(context, records if validate is not None else [])
    bar = tqdm(total=samples_per_epoch * epochs, initial=samples_per_epoch * first, desc=name, unit="sample",
               unit_scale=True, disable=not context.progress, leave=False)
    reason, epoch = "epoch cap", first - 1
    started = time.perf_counter() - seconds
    for epoch in range(first, epochs):
        model.train()
        parts: dict[str, list[float]] = {}
        timed_out = False
        for batch in epoch_batches(epoch):
            with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
                out = loss_of(batch)
            loss = out["loss"] if isinstance(out, dict) else out
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            for part, value in (out.items() if isinstance(out, dict) else [("loss", loss)]):
                parts.setdefault(part, []).append(float(value.detach()))
            samples += len(batch)
            bar.update(len(batch))
            if cap and time.perf_counter() - started >= cap:
                timed_out = True
                break
        model.eval()
        last = timed_out or epoch == epochs - 1
        validating = validate is not None and (last or (epoch + 1) % every == 0)
        if validate is not None and not validating:
            continue
        validation_started = time.perf_counter()
        metrics = validate() if validating else {}
        valid_seconds += time.perf_counter() - validation_started
        metrics = {**metrics, **{k: float(np.mean(v)) for k, v in parts.items()},
                   "seconds": time.perf_counter() - started, "valid_seconds": valid_seconds,
                   "samples": float(samples), "lr": float(scheduler.get_last_lr()[0])}
        records.append({"epoch": epoch, **metrics})
        stop = False
        if validating:
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", **{metric.replace("@", ""): f"{metrics[metric]:.4f}"})
            context.epoch_end(epoch, metrics)
            stop = stopper.step(metrics[metric], epoch, model)
        if path is not None and not (stop or last):
            save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "run": checkpoint_identity(context, name),
                                   "epoch": epoch, "model": model.state_dict(),
                                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                   "stopper": dict(stopper.__dict__), "records": records,
                                   "seconds": time.perf_counter() - started, "samples": samples,
                                   "rng": rng_states()})
        if stop or timed_out:
            reason = "patience" if stop else "time cap"
            break
    bar.close()
    stopper.restore(model)
    model.eval()
    result = TrainingResult(epochs=epoch + 1, best_epoch=stopper.best_epoch, stop_reason=reason, records=records,
                            seconds=time.perf_counter() - started, resumed_from=resumed,
                            seconds_before_resume=saved["seconds"] if saved is not None else 0.0)
    if path is not None:
        # The chosen weights and the random states the rest of the run starts from: a run
        # killed from here on (ranking the test cases, say) reuses them instead of refitting.
        keep_finished(path, context, name, {"epoch": epoch, "finished": result.summary(), "model": model.state_dict(),
                                            "records": records, "seconds": result.seconds, "samples": samples,
                                            "rng": rng_states()})
    context.run.state.setdefault("training", {})[name] = result.summary()
    return result


def _reuse_finished(model: torch.nn.Module, saved: dict[str, Any], context, name: str, path: Path,
                    validating: bool) -> TrainingResult:
    """A fit that ended in an earlier process: its chosen weights, records and random
    states, as the uninterrupted process had them when the fit returned."""
    model.load_state_dict(saved["model"])
    model.eval()
    set_rng_states(saved["rng"])
    summary = adopt_finished(saved, context, name, path, validating)
    result = TrainingResult(epochs=summary["epochs"], best_epoch=summary["best_epoch"],
                            stop_reason=summary["stop_reason"], records=saved["records"],
                            seconds=float(saved["seconds"]), resumed_from=summary["resumed_from"],
                            seconds_before_resume=float(saved["seconds"]))
    context.run.state.setdefault("training", {})[name] = result.summary()
    return result


def replay(context, records: list[dict[str, float]]) -> None:
    """Hand a checkpoint's epoch records to ``context.epoch_end``: this process's hooks
    have not seen them."""
    for record in records:
        context.epoch_end(int(record["epoch"]), {k: v for k, v in record.items() if k != "epoch"})


def keep_finished(path: Path, context, name: str, state: dict[str, Any]) -> None:
    """Write the end of the fit ``name`` (``state``: its ``finished`` summary, the chosen
    weights, records, seconds and random states) as its finished checkpoint, deleted by
    :func:`release` once the run's row is stored."""
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "run": checkpoint_identity(context, name), **state})
    leave_to_release(context, path)


def adopt_finished(saved: dict[str, Any], context, name: str, path: Path, validating: bool = True) -> dict[str, Any]:
    """The bookkeeping of reusing the finished checkpoint ``saved`` (the caller restores the
    weights and random states): say so, replay its records (when the fit validates) and
    leave the file to :func:`release`. Returns the fit's summary with every second counted
    as spent in earlier processes."""
    summary = saved["finished"]
    print(f"{name}: the fit finished in an earlier process (epoch {summary['epochs']}, stopped by "
          f"{summary['stop_reason']}); reusing its weights from {path}", file=sys.stderr, flush=True)
    replay(context, saved["records"] if validating else [])
    leave_to_release(context, path)
    return {**summary, "seconds_before_resume": summary["seconds"]}


def adopt_leftover(context, name: str) -> bool:
    """Leave the checkpoint of the fit ``name`` to :func:`release` when the fit's result came
    from a cache instead of the fit (a tokenizer whose codes an earlier process cached after
    the fit finished there): that file, finished or not, is never read again, and without
    this it would outlive the run's row. Returns whether there was one."""
    path = checkpoint_path(context, name)
    return path.exists() and leave_to_release(context, path)


def leave_to_release(context, path: Path) -> bool:
    """Record ``path`` among the checkpoints :func:`release` deletes with the run of ``context``;
    ``False`` where it is recorded already."""
    registered = context.run.state.setdefault("checkpoints", [])
    if str(path) in registered:
        return False
    registered.append(str(path))
    return True


def release(run) -> int:
    """Delete the checkpoints the fits of ``run`` (a :class:`RunInfo`) left: call it once
    the run's row is stored, or when its fit is no longer wanted (a tuning trial). Returns
    how many files went."""
    paths = run.state.pop("checkpoints", [])
    for path in paths:
        Path(path).unlink(missing_ok=True)
    return len(paths)
