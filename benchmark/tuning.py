"""Optuna studies: one per (dataset, split, method, profile), selected on validation only.

The objective fits a method with the trial's parameters and returns a validation
metric (NDCG@10 by default); test cases are never read. Bad trials are pruned through
the ``on_epoch_end`` lifecycle hook. The study lives in any Optuna RDB storage: SQLite
under ``runs/`` by default, PostgreSQL to share one study between workers on many
machines (start the same command on each). A finished trial is never lost: a re-run
resumes the study, and a killed worker's trial is marked failed by the heartbeat and
retried by another worker.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from benchmark import hookimpl, plugins
from benchmark.errors import BenchmarkError, ParameterError
from benchmark.evaluation.metrics import CUTOFFS
from benchmark.methods import resolve_method
from benchmark.nn.engine import release
from benchmark.params import Param
from benchmark.runner import RunRequest, fit, machine, package_versions
from benchmark.store import database_fault, open_database

DEFAULT_STORAGE = "sqlite:///runs/optuna.db"
VALIDATION_METRICS = tuple(f"{name}@{k}" for name in ("ndcg", "recall") for k in CUTOFFS)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def study_name(dataset: str, split: str, method: str, profile: str, metric: str = "ndcg@10") -> str:
    return f"{dataset}|{split}|{method}|{profile}|{metric}"


def search_space(method: str) -> dict[str, Param]:
    """Dotted parameter name -> declaration, for every parameter Optuna tunes."""
    spec, _ = plugins.get_method(method)
    declared = {f"tokenizer.{p.name}": p for p in plugins.get_tokenizers()[spec.tokenizer].params}
    declared.update({f"recommender.{p.name}": p for p in plugins.get_recommenders()[spec.recommender].params})
    names = spec.search_space or tuple(name for name, p in declared.items() if p.tunable)
    space = {}
    for name in names:
        if name not in declared:
            raise ParameterError(f"method {method!r}: search space names unknown parameter {name!r}")
        if not declared[name].tunable:
            raise ParameterError(f"method {method!r}: parameter {name!r} declares no range or choices")
        space[name] = declared[name]
    return space


def tunable_space(method: str) -> dict[str, Param]:
    """:func:`search_space`, or one line saying that ``method`` has nothing to tune."""
    space = search_space(method)
    if not space:
        raise BenchmarkError(f"method {method!r} declares no search space: nothing to tune; "
                             f"tunable methods: {', '.join(tunable_methods()) or 'none'}")
    return space


def suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    if param.choices is not None:
        return trial.suggest_categorical(name, list(param.choices))
    if param.type is int:
        return trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(name, float(param.low), float(param.high), log=param.log)


class PruningPlugin:
    """Reports each epoch's validation metric to the trial; raises TrialPruned when told."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric

    @hookimpl
    def on_epoch_end(self, run, epoch: int, valid_metrics: dict[str, Any]) -> None:
        self.trial.report(float(valid_metrics[self.metric]), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {self.metric}={valid_metrics[self.metric]:.4f}")


def storage_for(url: str) -> RDBStorage:
    """RDB storage with a heartbeat, so a killed worker's trial is failed and retried.

    A fault of ``url`` is one :class:`~benchmark.errors.StoreError` line, as for ``--store``.
    """
    open_database(url, "--storage").dispose()
    try:
        with warnings.catch_warnings():
            # Optuna calls the heartbeat and its retry callback experimental on every construction.
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                                    message=".*(heartbeat_interval|RetryHeartbeatStaleTrialCallback)")
            return RDBStorage(
                url,
                heartbeat_interval=10,
                grace_period=30,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
    except sa.exc.SQLAlchemyError as exc:
        raise database_fault("--storage", url, exc) from None


@dataclass
class TuneRequest:
    method: str
    dataset: str
    split: str = "loo"
    trials: int = 20
    timeout: float | None = None
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    profile: str = "tiny"
    metric: str = "ndcg@10"
    seed: int = 0
    k_core: int = 5
    cache_dir: str = "runs/cache"
    progress: bool = True

    @property
    def name(self) -> str:
        return self.study or study_name(self.dataset, self.split, self.method, self.profile, self.metric)


def tune(request: TuneRequest) -> optuna.Study:
    """Run (or resume) the study until it holds ``trials`` finished trials."""
    if request.trials < 1:
        raise ParameterError(f"--trials {request.trials}: a study needs at least one trial; give --trials 1 or more")
    if request.timeout is not None and not request.timeout > 0:
        raise ParameterError(f"--timeout {request.timeout}: give a positive number of seconds, or leave it out")
    if request.metric not in VALIDATION_METRICS:
        raise ParameterError(f"--metric {request.metric!r}: not a validation metric; use one of "
                             f"{', '.join(VALIDATION_METRICS)}")
    space = tunable_space(request.method)
    defaults = resolve_method(request.method, request.profile).params
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        study_name=request.name,
        storage=storage_for(request.storage),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=request.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        load_if_exists=True,
    )
    # A resumed study continues the sampler's stream instead of replaying its first draws.
    study.sampler = optuna.samplers.TPESampler(seed=request.seed + len(study.trials))
    study.set_user_attr("method", request.method)
    study.set_user_attr("metric", request.metric)
    if not study.trials:
        # The defaults are the first trial, so the best trial is never worse than them.
        study.enqueue_trial({name: defaults[name] for name in space}, skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, param) for name, param in space.items()}
        method = resolve_method(request.method, request.profile, params)
        pruning = PruningPlugin(trial, request.metric)
        plugin_name = f"optuna-pruning-{trial.number}"
        plugins.pm.register(pruning, name=plugin_name)
        try:
            fitted = fit(
                RunRequest(request.dataset, request.split, request.method, seed=request.seed,
                           profile=request.profile, params=params, k_core=request.k_core),
                cache_dir=request.cache_dir,
                progress=request.progress,
                method=method,
            )
        finally:
            plugins.pm.unregister(name=plugin_name)
        value = float(fitted.validate()[request.metric])
        release(fitted.run)  # a trial's weights are not kept
        return value

    remaining = request.trials - len(study.get_trials(deepcopy=False, states=FINISHED))
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=request.timeout,
            callbacks=[MaxTrialsCallback(request.trials, states=FINISHED)],
            show_progress_bar=request.progress,
        )
    return study


def best_params(method: str, dataset: str, split: str, profile: str, storage: str = DEFAULT_STORAGE,
                metric: str = "ndcg@10", study: str | None = None) -> tuple[dict[str, Any], int]:
    """The best trial's parameters and the number of finished trials, for ``run --tuned``."""
    if not search_space(method):
        raise BenchmarkError(
            f"--tuned: method {method!r} declares no search space, so it has nothing to tune and no study; "
            f"run it without --tuned (tunable methods: {', '.join(tunable_methods()) or 'none'})"
        )
    name = study or study_name(dataset, split, method, profile, metric)
    command = f"genrec-bench tune --method {method} --dataset {shlex.quote(dataset)} --split {shlex.quote(split)}"
    if profile != "tiny":
        command += f" --profile {shlex.quote(profile)}"
    if metric != "ndcg@10":
        command += f" --metric {shlex.quote(metric)}"
    if storage != DEFAULT_STORAGE:
        command += f" --storage {shlex.quote(storage)}"
    try:
        loaded = optuna.load_study(study_name=name, storage=storage_for(storage))
    except KeyError:
        raise BenchmarkError(f"--tuned: no study {name!r} in {storage}; tune first: {command}") from None
    if not loaded.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise BenchmarkError(f"--tuned: study {name!r} in {storage} has no complete trial yet; finish it: {command}")
    finished = len(loaded.get_trials(deepcopy=False, states=FINISHED))
    return dict(loaded.best_trial.params), finished


def tunable_methods() -> list[str]:
    """Every registered method with a search space and no required argument."""
    return [name for name, spec in sorted(plugins.get_methods().items())
            if spec.argument_param is None and search_space(name)]


def write_study_report(study: optuna.Study, out_dir: str | Path, stem: str, command: str) -> Path:
    """``<stem>.md``: every trial of the study, with the command, date, machine and versions."""
    from datetime import datetime, timezone

    from tabulate import tabulate

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = package_versions()
    rows = [[t.number, t.state.name.lower(), "n/a" if t.value is None else f"{t.value:.4f}",
             ", ".join(f"{k.split('.', 1)[1]}={v:.4g}" if isinstance(v, float) else f"{k.split('.', 1)[1]}={v}"
                       for k, v in t.params.items())]
            for t in study.get_trials(deepcopy=False)]
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    lines = [
        f"# Optuna study `{study.study_name}`",
        "",
        f"Produced by: `{command}`",
        "",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- Machine: {machine()}",
        "- Packages: " + ", ".join(f"{p} {versions[p]}" for p in ("genrec-bench", "torch", "recbole", "optuna")),
        f"- Objective: validation {study.user_attrs.get('metric', 'ndcg@10')} (maximised); "
        f"{finished} finished trials; the first trial holds the method's defaults (a failed trial is retried "
        "with the same parameters)",
        f"- Best: trial {study.best_trial.number}, {study.best_value:.4f}",
        "",
        tabulate(rows, headers=["Trial", "State", "Validation", "Parameters"], tablefmt="github",
                 disable_numparse=True),
        "",
        f"![history]({stem}-history.png)",
        "",
    ]
    path = out_dir / f"{stem}.md"
    path.write_text("\n".join(lines))
    return path


def plot_study(study: optuna.Study, out_dir: str | Path, stem: str) -> list[Path]:
    """Optimisation history and parameter importances as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = [("history", plot_optimization_history)]
    if len(complete) >= 2:
        plots.append(("importance", plot_param_importances))
    for suffix, function in plots:
        with warnings.catch_warnings():
            # Optuna calls its matplotlib plots experimental on every call.
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                                    message="optuna.visualization.matplotlib")
            ax = function(study)
        path = out_dir / f"{stem}-{suffix}.png"
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=100)
        plt.close(ax.figure)
        written.append(path)
    return written
