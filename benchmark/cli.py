"""Command line: ``genrec-bench run | tune | leaderboard | compare | keys | checkpoints | plugins | methods
| datasets | inspect``.

A command imports the heavy modules it needs (torch, Optuna, matplotlib: the runner, the
tuner, the renderer) when it runs, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from tabulate import tabulate

from benchmark import plugins
from benchmark.cache import CACHE_ENV, default_cache
from benchmark.data.splits import DEFAULT_MAX_HISTORY, SPLITS, options_help, split_names
from benchmark.errors import BenchmarkError, ParameterError
from benchmark.methods import declared_params, resolve_method
from benchmark.params import parse_assignments
from benchmark.paths import file_problem, folder_problem
from benchmark.store import DEFAULT_URL, Store, run_key

DEFAULT_METHODS = "pop,sasrec-ce,sasrec-bce,lightgcn"
MAX_SEED = 2**32 - 1  # numpy's legacy seeding accepts 0 .. 2**32 - 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _names(option: str, text: str, example: str, parse: Callable[[str], list[str]] = _csv) -> list[str]:
    """The non-empty, distinct names of a comma-separated option."""
    names = parse(text)
    if not names:
        raise ParameterError(f"{option} {text!r} names nothing; give at least one, e.g. {option} {example}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParameterError(f"{option} {text!r} names {', '.join(repeated)} twice; give each once")
    return names


def _seed(text: str) -> int:
    """One seed: an integer numpy, torch and Python's ``random`` all accept."""
    try:
        seed = int(text)
    except ValueError:
        raise ParameterError(f"seed {text!r} is not an integer; write e.g. 0") from None
    if not 0 <= seed <= MAX_SEED:
        raise ParameterError(f"seed {seed} is out of range; give an integer from 0 to {MAX_SEED}")
    return seed


def _seed_argument(text: str) -> int:
    try:
        return _seed(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seeds(text: str) -> list[int]:
    seeds = []
    for part in _names("--seeds", text, "0,1,2"):
        try:
            seeds.append(_seed(part))
        except ParameterError as exc:
            raise ParameterError(f"--seeds {text!r}: {exc}") from None
    return seeds


def _check_folder(option: str, folder: str | Path) -> None:
    problem = folder_problem(folder)
    if problem:
        raise ParameterError(f"{option} {folder}: {problem}; pick a writable folder")


def board_dir(args: argparse.Namespace) -> Path:
    """Where boards (and their results archive) go: ``--leaderboards`` if given, else
    ``leaderboards/`` for the default store, else ``<store>-leaderboards/`` next to a SQLite
    store (``runs/leaderboards-<hash>/`` for a server URL), so a scratch store never rewrites
    the committed boards."""
    if args.leaderboards:
        return Path(args.leaderboards)
    if args.store == DEFAULT_URL:
        return Path("leaderboards")
    if args.store.startswith("sqlite:///"):
        path = Path(args.store.removeprefix("sqlite:///"))
        return path.with_name(f"{path.stem}-leaderboards")
    from benchmark.cache import content_hash

    return Path("runs") / f"leaderboards-{content_hash(args.store)[:8]}"


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.archive import export_archive, import_archive
    from benchmark.leaderboard import render
    from benchmark.preflight import check_methods
    from benchmark.runner import RunRequest, execute, load_split, save_rankings

    # Every name, value and output path is checked before anything is fitted or stored: a
    # typo fails in a second, not after an hour of other methods' training.
    methods = _names("--methods", args.methods, "pop")
    splits = _names("--split", args.split, "loo", split_names)
    seeds = _seeds(args.seeds)
    overrides = parse_assignments(args.param or [])
    _check_overrides(overrides, methods)
    variants = _variants(args.variant, overrides, methods)
    # Each run's method is resolved once, here: the same object gives the run key and the fit.
    tuned: dict[tuple[str, str], tuple[dict, int]] = {}
    once = {method: resolve_method(method, args.profile, _method_overrides(overrides, method)) for method in methods}
    resolved = {(split, method): once[method] for split in splits for method in methods}
    _check_folder("--cache", args.cache)
    boards = board_dir(args)
    _check_folder("--leaderboards", boards)
    if args.save_rankings:
        problem = file_problem(args.save_rankings)
        if problem:
            raise ParameterError(f"--save-rankings {args.save_rankings}: {problem}; give a file in an existing, "
                                 "writable folder")
    store = Store(args.store)
    if args.tuned:
        from benchmark.tuning import best_params

        for split in splits:
            for method in methods:
                tuned[(split, method)] = best_params(method, args.dataset, split, args.profile, args.storage)
                params = {**tuned[(split, method)][0], **_method_overrides(overrides, method)}
                resolved[(split, method)] = resolve_method(method, args.profile, params)
    for split in splits:
        loaded = load_split(args.dataset, split, args.k_core, args.max_history)
        check_methods(loaded.dataset, {method: resolved[(split, method)] for method in methods})
    command = "genrec-bench " + " ".join(shlex.quote(a) for a in args.argv)
    added = import_archive(store, boards)
    if added:
        print(f"imported {added} archived runs from {boards / 'results'}", flush=True)
    if args.save_rankings:
        Path(args.save_rankings).write_text("")  # the file holds this command's fitted runs only
        # A stored row holds target ranks only, not the top-20 lists: a skipped run has none to write.
        skipped = f"; its rankings are not written to {args.save_rankings} (--force re-runs it and writes them)"
    else:
        skipped = " (--force re-runs it)"
    started = time.perf_counter()
    for split in splits:
        for method in methods:
            for seed in seeds:
                params, trials = tuned.get((split, method), ({}, 0))
                request = RunRequest(
                    dataset=args.dataset, split=split, method=method, seed=seed,
                    profile=args.profile, params={**params, **_method_overrides(overrides, method)},
                    keep_seen=args.keep_seen, k_core=args.k_core, max_history=args.max_history,
                )
                label = f"{args.dataset} {split} {method} seed={seed}"
                method_resolved = resolved[(split, method)]
                key = request_key(request, method_resolved, trials)
                if not args.force and store.has(key):
                    print(f"skip {label}: already in the store{skipped}", flush=True)
                    continue
                owner = store.claim(key)
                if owner is not None:
                    print(f"skip {label}: being run by {owner} on this store{skipped if args.save_rankings else ''}",
                          flush=True)
                    continue
                with store.claimed(key):
                    if not args.force and store.has(key):
                        print(f"skip {label}: finished by another run meanwhile{skipped}", flush=True)
                        continue
                    def store_row(row: dict[str, Any], method: str = method, trials: int = trials) -> None:
                        if method in variants:
                            row["info"]["variant"] = variants[method]
                        store.add(row, command=command, tuned_trials=trials)

                    row, evaluation, split_obj = execute(request, cache_dir=args.cache,
                                                         progress=not args.no_progress, method=method_resolved,
                                                         store_row=store_row)
                a = row["metrics"]["all"]
                print(f"done {label}: R@10 {a['recall@10']:.4f} N@10 {a['ndcg@10']:.4f} "
                      f"train {row['train_seconds']:.1f}s", flush=True)
                if args.save_rankings:
                    save_rankings(args.save_rankings, split_obj, evaluation, method, seed)
        path = render(store, args.dataset, split, boards)
        export_archive(store, boards, args.dataset, split)
        print(f"leaderboard: {path}", flush=True)
    print(f"wall time: {time.perf_counter() - started:.1f}s")


def _check_overrides(overrides: dict[str, str], methods: list[str]) -> None:
    """Every ``--param`` names a parameter some selected method declares, and a
    ``METHOD:KEY`` names a method of this run."""

    declared = set().union(*(declared_params(m) for m in methods))
    for key in overrides:
        target, sep, name = key.rpartition(":")
        if sep and target not in methods:
            raise ParameterError(
                f"--param {key}: method {target!r} is not selected in this run (--methods {','.join(methods)}); "
                "write one of them before the colon"
            )
        if not sep and key not in declared:
            raise ParameterError(
                f"--param {key}: no selected method declares it; known: {', '.join(sorted(declared)) or 'none'}"
            )


VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,39}")


def _variants(name: str | None, overrides: dict[str, str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """With ``--variant NAME``, per method with ``--param`` overrides, the variant its runs
    are stored as: a board row of its own (``METHOD[NAME]``) beside the method's, never
    replacing it. Without it, the runs are the method's latest configuration, as before."""
    if name is None:
        return {}
    out = {method: {"name": name, "params": own} for method in methods
           if (own := _method_overrides(overrides, method))}
    if not out:
        raise ParameterError(f"--variant {name}: it names the runs of a --param change, and no --param applies to "
                             f"--methods {','.join(methods)}; add the --param that makes the variant, or drop "
                             "--variant")
    if not VARIANT_NAME.fullmatch(name):
        raise ParameterError(f"--variant {name!r}: use 1-40 letters, digits and . _ + - (starting with a letter or "
                             "digit), e.g. --variant cosine-head")
    return out


def _method_overrides(overrides: dict[str, str], method: str) -> dict[str, str]:
    """``--param recommender.epochs=3`` applies to every method declaring that parameter;
    ``--param sasrec-ce:recommender.epochs=3`` to one method, ``recbole:GRU4Rec:...`` to one
    method with an argument (unknown names fail there)."""

    declared = declared_params(method)
    chosen = {}
    for key, value in overrides.items():
        target, sep, name = key.rpartition(":")
        if not sep and key in declared:
            chosen[key] = value
        elif sep and target == method:
            chosen[name] = value
    return chosen


def request_key(request, method, tuned_trials: int) -> str:
    """The store's run key of ``request`` with its resolved ``method``, computed without fitting."""
    from benchmark.runner import load_split

    split = load_split(request.dataset, request.split, request.k_core, request.max_history)
    return run_key({
        "dataset": request.dataset, "split": request.split, "split_digest": split.digest,
        "method": request.method, "params": method.key_params, "seed": request.seed,
        "profile": request.profile, "exclude_seen": not request.keep_seen, "tuned_trials": tuned_trials,
        "code_hashes": method.versions,
    })


def cmd_tune(args: argparse.Namespace) -> None:
    from benchmark.preflight import check_methods
    from benchmark.runner import load_split
    from benchmark.tuning import TuneRequest, plot_study, tunable_methods, tunable_space, tune, write_study_report

    if args.all == (args.method is not None):
        raise ParameterError("tune: give either --method M or --all (every method, the same --trials budget)")
    methods = tunable_methods() if args.all else _names("--method", args.method, "sasrec-ce")
    resolved = {}
    for method in methods:
        tunable_space(method)
        resolved[method] = resolve_method(method, args.profile)
    _check_folder("--cache", args.cache)
    _check_folder("--leaderboards", args.leaderboards)
    check_methods(load_split(args.dataset, args.split, args.k_core).dataset, resolved)
    for method in methods:
        request = TuneRequest(
            method=method, dataset=args.dataset, split=args.split, trials=args.trials,
            timeout=args.timeout, storage=args.storage, study=args.study, profile=args.profile,
            metric=args.metric, seed=args.seed, k_core=args.k_core, cache_dir=args.cache,
            progress=not args.no_progress,
        )
        study = tune(request)
        best = study.best_trial
        print(f"{method}: best validation {args.metric} {best.value:.4f} (trial {best.number} of "
              f"{len(study.trials)}) with {best.params}", flush=True)
        stem = request.name.replace("|", "-").replace(":", "_").replace("@", "")
        command = "genrec-bench " + " ".join(shlex.quote(a) for a in args.argv)
        print(f"report: {write_study_report(study, Path(args.leaderboards) / 'tuning', stem, command)}")
        for path in plot_study(study, Path(args.leaderboards) / "tuning", stem):
            print(f"plot: {path}")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from benchmark.archive import export_archive, import_archive
    from benchmark.leaderboard import render

    boards = board_dir(args)
    _check_folder("--leaderboards", boards)
    if args.readme and not Path(args.readme).is_file():
        raise BenchmarkError(f"--readme {args.readme}: no such file; name a Markdown file with "
                             "'<!-- headline: BOARD.md -->' ... '<!-- /headline -->' blocks")
    # Without an archive to import there is nothing to build a store from: open an existing one only.
    archived = any((boards / "results").glob("*.jsonl.gz"))
    store = Store(args.store, create=archived)
    import_archive(store, boards)
    pairs = store.combinations()
    if args.dataset:
        pairs = [p for p in pairs if p[0] == args.dataset]
    if args.split:
        pairs = [p for p in pairs if p[1] in split_names(args.split)]
    if not pairs:
        raise BenchmarkError(f"no runs in {args.store} for these filters; run `genrec-bench run` first")
    for dataset, split in pairs:
        print(render(store, dataset, split, boards))
        export_archive(store, boards, dataset, split)
    if args.readme:
        from benchmark.readme_headline import fill_headlines

        for board in fill_headlines(Path(args.readme)):
            print(f"headline of {board.name} -> {args.readme}")


def cmd_compare(args: argparse.Namespace) -> None:
    from benchmark.archive import import_archive
    from benchmark.compare import HEADER, compare
    from benchmark.leaderboard import SIGNIFICANCE

    boards = board_dir(args)
    archived = any((boards / "results").glob("*.jsonl.gz"))
    store = Store(args.store, create=archived)
    import_archive(store, boards)
    comparisons, profile = compare(store, args.dataset, args.split, args.methods, args.subset, args.metric,
                                   args.profile)
    print(f"{args.dataset} {args.split}, profile {profile}: {args.metric} per test case, each method's seeds "
          "averaged; difference A - B with its 95% bootstrap interval and the two-sided paired bootstrap "
          "p-value (1,000 resamples of the same cases); the seed-pair range is A - B for every pairing of one "
          "seed of A with one seed of B")
    print(tabulate([c.row() for c in comparisons], headers=HEADER, disable_numparse=True))
    spread = [c for c in comparisons if c.within_seed_spread]
    if spread:
        print(f"~ p < {SIGNIFICANCE} over cases, but some pairing of single seeds reverses or erases the gap: "
              f"within the seeds' spread ({', '.join(f'{c.a} vs {c.b}' for c in spread)}); more seeds would settle it")


def cmd_keys(args: argparse.Namespace) -> None:
    from benchmark.archive import key_report

    report = key_report(args.leaderboards)
    if not report:
        raise BenchmarkError(f"--leaderboards {args.leaderboards}: no results archive under it "
                             "(results/*.jsonl.gz); give the folder `run` writes boards to")
    shown = report if args.all else [r for r in report if r["status"] != "kept"]
    if shown:
        print(tabulate([[r["board"], r["method"], r["seed"], r["profile"], r["created_at"], r["archived_key"],
                         r["key_now"], r["status"]] for r in shown],
                       headers=["Board", "Method", "Seed", "Profile", "Created", "Archived key", "Key now", "Status"]))
    counts = {s: sum(r["status"] == s for r in report) for s in ("kept", "superseded", "re-runs")}
    print(f"{counts['kept']} of {len(report)} archived runs keep their run keys; {counts['superseded']} superseded "
          f"by a later row with the current key; {counts['re-runs']} would be fitted again by `run`")


def cmd_checkpoints(args: argparse.Namespace) -> None:
    from benchmark import inflight

    if args.export and args.import_:
        raise BenchmarkError("give --export or --import, not both")
    if args.import_:
        taken, kept = inflight.import_(args.import_, args.cache)
        print(f"{len(taken)} checkpoint(s) copied into {args.cache}"
              + (f"; {len(kept)} kept as they were (the cache's own is as far or further)" if kept else ""))
    elif args.export:
        entries = inflight.export(args.cache, args.export)
        print(f"{len(entries)} fit(s) in flight exported to {args.export} (see its README.md)")
    entries = inflight.describe(args.cache)
    print(inflight.table(entries) if entries else f"no fit in flight under {args.cache}")


def cmd_plugins(args: argparse.Namespace) -> None:
    rows = [[p["name"], p["version"], ", ".join(p["hooks"])] for p in plugins.describe_plugins()]
    print(tabulate(rows, headers=["Plugin", "Version", "Hooks"]))


def cmd_methods(args: argparse.Namespace) -> None:
    tokenizers, recommenders = plugins.get_tokenizers(), plugins.get_recommenders()
    rows = []
    for name, spec in sorted(plugins.get_methods().items()):
        kind = tokenizers[spec.tokenizer].kind
        rows.append([name + (":ARG" if spec.argument_param else ""), spec.tokenizer,
                     spec.recommender, kind, spec.description])
    print(tabulate(rows, headers=["Method", "Tokenizer", "Recommender", "Identifiers", "Description"]))
    if args.params:

        method = resolve_method(args.params, args.profile)
        declared = {f"recommender.{p.name}": p for p in recommenders[method.spec.recommender].params}
        declared.update({f"tokenizer.{p.name}": p for p in tokenizers[method.spec.tokenizer].params})
        table = []
        for key, value in method.params.items():
            param = declared[key]
            space = param.choices or ((param.low, param.high) if param.tunable else "fixed")
            table.append([key, value, space, param.allowed if param.bounded else "", param.help])
        print()
        print(tabulate(table, headers=["Parameter", f"Value ({args.profile})", "Search space", "Allowed",
                                       "Meaning"]))


def cmd_datasets(args: argparse.Namespace) -> None:
    from benchmark.runner import load_dataset, load_split

    if not args.names:
        rows = [[n, s.description] for n, s in sorted(plugins.get_datasets().items())]
        print(tabulate(rows, headers=["Dataset", "Description"]))
        return
    for name in args.names:
        data = load_dataset(name, args.k_core)
        print(f"{name}: {data.n_users} users, {data.n_items} items, {data.n_interactions} "
              f"interactions, density {data.density:.4%} (after {args.k_core}-core)")
        rows = []
        for split_name in split_names(args.split):
            summary = load_split(name, split_name, args.k_core).summary()
            for part in ("valid", "test"):
                s = summary[part]
                rows.append([split_name, part, s["cases"], s["warm"], s["cold"], f"{s['cold_share']:.2%}",
                             s["dropped"], summary["train_interactions"], summary["cold_items"]])
        print(tabulate(rows, headers=["Split", "Part", "Cases", "Warm", "Cold", "Cold share",
                                      "Dropped (no input)", "Train interactions", "Cold items"]))


def cmd_inspect(args: argparse.Namespace) -> None:
    from benchmark.inspection import inspect_tokenizer

    _check_folder("--cache", args.cache)
    result = inspect_tokenizer(
        args.dataset, args.tokenizer, split=args.split, params=parse_assignments(args.param or []),
        profile=args.profile, seed=args.seed, cache_dir=args.cache, progress=not args.no_progress,
    )
    print(f"{args.tokenizer} on {args.dataset} {args.split} ({args.profile}, seed {args.seed})")
    print(tabulate([[name, value] for name, value in result.items()], headers=["Diagnostic", "Value"],
                   floatfmt=".4f"))


SPLIT_HELP = options_help() + " (options after a colon, e.g. cold-items:share=0.2,seed=1)"


def _add_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", default=default_cache(),
                        help=f"artifact cache folder (default: ${CACHE_ENV} or runs/cache)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="genrec-bench", description=__doc__)
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE",
                        help="load a single-file plugin (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train, evaluate, store and render leaderboards")
    run.add_argument("--dataset", default="ml-100k")
    run.add_argument("--split", default="loo", help=f"comma-separated: {SPLIT_HELP}")
    run.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated method names")
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--profile", default="tiny", help="tiny (CPU, minutes) or paper")
    run.add_argument("--param", action="append", metavar="[METHOD:]KEY=VALUE",
                     help="override a parameter, e.g. recommender.epochs=3 or sasrec-ce:recommender.epochs=3")
    run.add_argument("--variant", metavar="NAME",
                     help="store the runs of a --param change as the variant NAME: a board row METHOD[NAME] beside the "
                     "method's own (without it they are the method's latest configuration and replace its row)")
    run.add_argument("--keep-seen", action="store_true",
                     help="keep the user's history items rankable (the generative papers' protocol); "
                     "default: excluded from every ranking")
    run.add_argument("--k-core", type=int, default=5)
    run.add_argument("--max-history", type=int, default=DEFAULT_MAX_HISTORY,
                     help="items of history a model reads (part of the split digest)")
    run.add_argument("--store", default=DEFAULT_URL, help="SQLAlchemy URL of the results store")
    _add_cache_option(run)
    run.add_argument("--leaderboards", help="board folder (default: leaderboards/ for the default store, "
                     "else a leaderboards folder next to the store)")
    run.add_argument("--save-rankings", metavar="FILE", help="write every test case's top-20 as JSON lines")
    run.add_argument("--force", action="store_true", help="re-run runs already in the store")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--tuned", action="store_true",
                     help="use each method's best trial from its study (genrec-bench tune)")
    run.add_argument("--storage", default="sqlite:///runs/optuna.db", help="Optuna storage for --tuned")
    run.set_defaults(func=cmd_run)

    tune = sub.add_parser("tune", help="Optuna study per method on validation data")
    tune.add_argument("--method", help="comma-separated method names")
    tune.add_argument("--all", action="store_true", help="every method with a search space")
    tune.add_argument("--dataset", default="ml-100k")
    tune.add_argument("--split", default="loo", help=f"one of {SPLIT_HELP}")
    tune.add_argument("--trials", type=int, default=20, help="finished trials the study should hold")
    tune.add_argument("--timeout", type=float, help="stop this worker after so many seconds")
    tune.add_argument("--storage", default="sqlite:///runs/optuna.db",
                      help="Optuna RDB URL; postgresql://... to share a study between workers")
    tune.add_argument("--study", help="study name (default: dataset|split|method|profile|metric)")
    tune.add_argument("--profile", default="tiny")
    tune.add_argument("--metric", default="ndcg@10", help="validation metric to maximise")
    tune.add_argument("--seed", type=_seed_argument, default=0)
    tune.add_argument("--k-core", type=int, default=5)
    _add_cache_option(tune)
    tune.add_argument("--leaderboards", default="leaderboards")
    tune.add_argument("--no-progress", action="store_true")
    tune.set_defaults(func=cmd_tune)

    board = sub.add_parser("leaderboard", help="render leaderboards from the store")
    board.add_argument("--dataset")
    board.add_argument("--split")
    board.add_argument("--store", default=DEFAULT_URL)
    board.add_argument("--leaderboards", help="board folder (default as for run)")
    board.add_argument("--readme", help="also copy each board's headline table into this Markdown file's "
                       "'<!-- headline: BOARD.md -->' ... '<!-- /headline -->' blocks (e.g. README.md)")
    board.set_defaults(func=cmd_leaderboard)

    comp = sub.add_parser("compare", help="paired bootstrap test between stored methods on one board")
    comp.add_argument("methods", nargs="+", metavar="METHOD",
                      help="two or more methods on the board (a tuned row: METHOD@tuned, a variant: "
                      "METHOD[VARIANT]); every pair is compared")
    comp.add_argument("--dataset", default="ml-100k")
    comp.add_argument("--split", default="loo")
    comp.add_argument("--subset", default="all", help="all, warm, cold, new-user or a popularity group G1..G4")
    comp.add_argument("--metric", default="ndcg@10", help="recall@K or ndcg@K, K in 5, 10, 20")
    comp.add_argument("--profile", help="runs of this profile (default: the profile the board shows)")
    comp.add_argument("--store", default=DEFAULT_URL)
    comp.add_argument("--leaderboards", help="board folder whose results archive is imported first "
                      "(default as for run)")
    comp.set_defaults(func=cmd_compare)

    keys = sub.add_parser("keys", help="check that archived runs keep their run keys under the current code")
    keys.add_argument("--leaderboards", default="leaderboards", help="board folder holding results/ (default: "
                      "leaderboards)")
    keys.add_argument("--all", action="store_true", help="list every archived run, not only the changed ones")
    keys.set_defaults(func=cmd_keys)

    points = sub.add_parser("checkpoints", help="list the fits in flight (their checkpoints); move them to "
                            "another machine with --export / --import")
    _add_cache_option(points)
    points.add_argument("--export", metavar="DIR", help="copy the checkpoints and the artifacts beside them into DIR")
    points.add_argument("--import", dest="import_", metavar="DIR",
                        help="copy a folder written by --export into the cache (a further checkpoint there is kept)")
    points.set_defaults(func=cmd_checkpoints)

    plug = sub.add_parser("plugins", help="list plugins, their hooks and versions")
    plug.set_defaults(func=cmd_plugins)

    methods = sub.add_parser("methods", help="list methods; --params M shows M's parameters")
    methods.add_argument("--params", metavar="METHOD")
    methods.add_argument("--profile", default="tiny")
    methods.set_defaults(func=cmd_methods)

    datasets = sub.add_parser("datasets", help="list datasets, or describe the named ones")
    datasets.add_argument("names", nargs="*")
    datasets.add_argument("--split", default=",".join(SPLITS), help=f"comma-separated: {SPLIT_HELP}")
    datasets.add_argument("--k-core", type=int, default=5)
    datasets.set_defaults(func=cmd_datasets)

    inspect = sub.add_parser("inspect", help="fit a tokenizer alone and print diagnostics of its identifiers")
    inspect.add_argument("what", choices=["tokenizer"])
    inspect.add_argument("--dataset", default="ml-100k")
    inspect.add_argument("--tokenizer", required=True, help="a registered tokenizer of 'codes' identifiers")
    inspect.add_argument("--split", default="loo", help=f"one of {SPLIT_HELP}")
    inspect.add_argument("--param", action="append", metavar="KEY=VALUE",
                         help="override a tokenizer parameter, e.g. alpha=0.1 (no 'tokenizer.' prefix)")
    inspect.add_argument("--profile", default="tiny")
    inspect.add_argument("--seed", type=_seed_argument, default=0)
    _add_cache_option(inspect)
    inspect.add_argument("--no-progress", action="store_true")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv
    try:
        for path in args.plugin:
            plugins.load_plugin_file(path)
        args.func(args)
    except BenchmarkError as exc:
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
