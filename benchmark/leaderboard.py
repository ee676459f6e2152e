"""Leaderboards from the results store: markdown, CSV and plots per dataset and split.

One row per method configuration. Each cell is the mean over seeds ± the standard
deviation across seeds, with a 95% bootstrap interval over test cases; column headers
carry each subset's number of test cases and flag subsets under 100. ``*`` / ``†``
mark a method significantly better / worse than the best baseline of that column
(paired bootstrap over the same test cases, p < 0.05).
"""

from __future__ import annotations

import csv
import json
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.data.splits import POPULARITY_GROUPS, PROTOCOL_VERSION, subset_masks
from benchmark.evaluation.metrics import per_case
from benchmark.evaluation.statistics import (
    BOOTSTRAP_SAMPLES,
    SMALL_SUBSET,
    bootstrap_interval,
    paired_bootstrap_pvalue,
)
from benchmark.html_board import write_html
from benchmark.methods import comparable_params
from benchmark.plugins import get_methods, method_family
from benchmark.store import Store

SUBSETS = (("all", "All"), ("warm", "Warm"), ("cold", "Cold"), ("new-user", "New-user"))
# The headline table: these metrics for every subset the split has, a few columns wide.
HEADLINE_METRICS = (("ndcg@10", "N@10"), ("recall@10", "R@10"))
METRICS = (("recall@5", "R@5"), ("recall@10", "R@10"), ("ndcg@5", "N@5"), ("ndcg@10", "N@10"))
GROUP_METRICS = (("recall@10", "R@10"), ("ndcg@10", "N@10"))
SIGNIFICANCE = 0.05
SHOWN_VERSIONS = ("genrec-bench", "torch", "recbole", "transformers", "peft", "numpy", "pandas",
                  "optuna")


NOT_CONVERGED = "‡"


def fits(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The validated training fits of a stored run: for each, epochs run, the chosen epoch
    (1-based), why it stopped (``patience``, ``epoch cap``, ``time cap``; ``not recorded``
    for runs stored before fits recorded it) and seconds. Empty for a method with nothing
    to train (``pop``). Fits without validation (a tokenizer's fixed passes) are not
    listed: no validation decided where they stopped."""
    info = run["info"] or {}
    summaries = [s for s in (info.get("training") or {}).values() if s.get("best_epoch", -1) >= 0]
    if summaries:
        return [{"epochs": int(s["epochs"]), "best": int(s["best_epoch"]) + 1, "stop": s["stop_reason"],
                 "seconds": s.get("seconds")} for s in summaries]
    records = [r for r in info.get("epochs") or [] if "ndcg@10" in r]
    if not records:
        return []
    best = max(records, key=lambda r: r["ndcg@10"])  # the first of equal values, as early stopping keeps
    return [{"epochs": int(records[-1]["epoch"]) + 1, "best": int(best["epoch"]) + 1, "stop": "not recorded",
             "seconds": None}]


def compact_table(rows: list[list[str]], headers: list[str]) -> str:
    """A github table whose columns are as wide as their widest cell or header, without
    tabulate's two extra spaces after each header: the headline must fit 100 columns."""
    import tabulate as tabulate_module

    padding, tabulate_module.MIN_PADDING = tabulate_module.MIN_PADDING, 0
    try:
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    finally:
        tabulate_module.MIN_PADDING = padding


def variant(row: dict[str, Any]) -> str:
    """The variant name a run was stored under (``run --param``, ``--variant``): a
    configuration shown as a row of its own beside the method's; ``""`` for the method's."""
    return ((row.get("info") or {}).get("variant") or {}).get("name", "")


def variant_suffix(row: dict[str, Any]) -> str:
    """``[name]`` after a variant's method name; ``""`` for the method's own row."""
    name = variant(row)
    return f"[{name}]" if name else ""


@dataclass
class Entry:
    """One leaderboard row: a method configuration and its runs over seeds."""

    runs: list[dict[str, Any]]
    per_case: dict[str, np.ndarray] = field(default_factory=dict)  # averaged over the runs
    run_cases: list[dict[str, np.ndarray]] = field(default_factory=list)  # each run's, in ``runs`` order

    @property
    def first(self) -> dict[str, Any]:
        return self.runs[-1]

    @property
    def converged(self) -> bool:
        """Every validated fit of every seed stopped by patience (none hit a cap)."""
        return all(f["stop"] == "patience" for run in self.runs for f in fits(run))

    @property
    def name(self) -> str:
        trials = self.first["tuned_trials"]
        return (self.first["method"] + variant_suffix(self.first) + (f" (tuned, {trials} trials)" if trials else "")
                + ("" if self.first["exclude_seen"] else " (seen kept)")
                + ("" if self.converged else f" {NOT_CONVERGED}"))

    def convergence(self) -> tuple[str, str]:
        """``(epochs, stopped by)`` cells: per seed ``run/best`` epochs, and the stop reasons
        counted over seeds (``patience x3``); ``-`` without a validated fit."""
        all_fits = [f for run in self.runs for f in fits(run)]
        if not all_fits:
            return "-", "-"
        epochs = " ".join(f"{f['epochs']}/{f['best']}" for f in all_fits)
        reasons: dict[str, int] = defaultdict(int)
        for f in all_fits:
            reasons[f["stop"]] += 1
        return epochs, ", ".join(f"{reason} x{n}" for reason, n in sorted(reasons.items()))

    @property
    def baseline(self) -> bool:
        return bool((self.first["info"] or {}).get("baseline"))

    @property
    def family(self) -> str:
        """The method's family as stored with the run, else as its registered plugin says."""
        stored = (self.first["info"] or {}).get("family")
        if stored:
            return stored
        return method_family(self.first["method"])

    @property
    def short_name(self) -> str:
        """The name in the headline table: the method, ``tuned`` / ``seen kept`` when so, ``‡``."""
        return (self.first["method"] + variant_suffix(self.first) + (" tuned" if self.first["tuned_trials"] else "")
                + ("" if self.first["exclude_seen"] else " seen kept")
                + ("" if self.converged else f" {NOT_CONVERGED}"))

    def train_minutes(self) -> float | None:
        return _mean([t / 60 if t is not None else None for t in map(fit_seconds, self.runs)])

    def seed_values(self, subset: str, metric: str) -> list[float | None]:
        return [r["metrics"][subset][metric] for r in self.runs]


def fit_seconds(run: dict[str, Any]) -> float | None:
    """A run's fitting seconds, the earlier processes of a resumed fit included: a row stored
    before ``train_seconds`` counted them has the total in its fits' training records."""
    stored = run.get("train_seconds")
    if stored is None:
        return None
    training = ((run.get("info") or {}).get("training") or {}).values()
    recorded = (run.get("tokenizer_seconds") or 0.0) + sum(t.get("seconds") or 0.0 for t in training)
    return max(stored, recorded)


def _entries(rows: list[dict[str, Any]]) -> tuple[list[Entry], list[tuple[dict[str, Any], str]]]:
    """Group runs into leaderboard rows (the latest configuration per method); also return
    the runs left out, each with the reason."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    left_out: list[tuple[dict[str, Any], str]] = []
    for row in rows:
        key = (row["method"], variant(row), row["profile"], row["exclude_seen"], row["tuned_trials"],
               json.dumps(comparable_params(row["method"], row["params"]), sort_keys=True))
        # A re-run of a seed (e.g. after a plugin's code changed) replaces the older one.
        replaced = [r for r in groups[key] if r["seed"] == row["seed"]]
        left_out += [(r, "replaced by a later run of the same seed") for r in replaced]
        groups[key] = [r for r in groups[key] if r["seed"] != row["seed"]] + [row]
    latest: dict[tuple, list[dict[str, Any]]] = {}
    for group in groups.values():
        first = group[-1]
        key = (first["method"], variant(first), first["profile"], first["exclude_seen"], first["tuned_trials"] > 0)
        if key in latest and _newest(latest[key]) > _newest(group):
            left_out += [(r, "an older configuration of the method") for r in group]
            continue
        left_out += [(r, "an older configuration of the method") for r in latest.get(key, [])]
        latest[key] = group
    entries = []
    for group in latest.values():
        group.sort(key=lambda r: r["seed"])
        stacked = [per_case(np.asarray(r["ranks"])) for r in group]
        entry = Entry(group, {m: np.mean([s[m] for s in stacked], axis=0) for m in stacked[0]}, stacked)
        entries.append(entry)
    return entries, left_out


def main_subset(split: str, counts: dict[str, int]) -> str:
    """The subset a board is sorted by: the cold cases on a cold-item split (what it
    exists to measure), every case otherwise."""
    return "cold" if split.partition(":")[0] == "cold-items" and counts.get("cold") else "all"


def headline_subsets(counts: dict[str, int]) -> list[str]:
    """The subsets the headline table shows: those with cases, less ``warm`` when it holds
    every case (it would repeat ``all``)."""
    return [s for s, _ in SUBSETS if counts[s] and not (s == "warm" and counts["warm"] == counts["all"])]


def _newest(group: list[dict[str, Any]]) -> str:
    return max(r["created_at"] for r in group)


def _masks(row: dict[str, Any]) -> dict[str, np.ndarray]:
    labels = row["case_labels"]
    return subset_masks(labels["cold"], labels.get("new_user", np.zeros(len(labels["cold"]))), labels["group"])


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _std(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.std(present, ddof=1)) if len(present) > 1 else None


def _bound(value: float) -> str:
    """An interval bound at three decimals without its leading zero: ``.076``."""
    text = f"{value:.3f}"
    return text[1:] if text.startswith("0.") else text


@dataclass
class Cell:
    mean: float | None
    std: float | None
    interval: tuple[float, float] | None
    mark: str = ""
    p_value: float | None = None

    def headline(self) -> str:
        """``mean`` with its mark and 95% interval, three decimals, the interval's bounds
        without their leading zero (``0.088† [.076, .101]``) so that a row of the loo
        board's headline fits in 100 columns: the headline table's cell."""
        if self.mean is None:
            return "n/a"
        out = f"{self.mean:.3f}{self.mark}"
        if self.interval is not None:
            out += f" [{_bound(self.interval[0])}, {_bound(self.interval[1])}]"
        return out

    def text(self, digits: int = 4) -> str:
        if self.mean is None:
            return "n/a"
        out = f"{self.mean:.{digits}f}{self.mark}"
        if self.std is not None:
            out += f" ±{self.std:.{digits}f}"
        if self.interval is not None:
            out += f" [{self.interval[0]:.{digits}f}, {self.interval[1]:.{digits}f}]"
        return out


def compute_cells(entries: list[Entry], masks: dict[str, np.ndarray], subsets, metrics) -> dict:
    """``cells[(entry index, subset, metric)]`` with intervals and significance marks."""
    cells: dict[tuple[int, str, str], Cell] = {}
    for subset in subsets:
        mask = masks[subset]
        for metric in metrics:
            for i, entry in enumerate(entries):
                values = entry.per_case[metric][mask]
                seed_values = entry.seed_values(subset, metric)
                cells[(i, subset, metric)] = Cell(
                    mean=_mean(seed_values), std=_std(seed_values), interval=bootstrap_interval(values)
                )
            baselines = [i for i, e in enumerate(entries) if e.baseline and cells[(i, subset, metric)].mean is not None]
            if not baselines or not mask.any():
                continue
            reference = max(baselines, key=lambda i: cells[(i, subset, metric)].mean)
            for i, entry in enumerate(entries):
                if i == reference:
                    continue
                p = paired_bootstrap_pvalue(entry.per_case[metric][mask], entries[reference].per_case[metric][mask])
                cell = cells[(i, subset, metric)]
                cell.p_value = p
                if p is not None and p < SIGNIFICANCE:
                    cell.mark = "*" if cell.mean > cells[(reference, subset, metric)].mean else "†"
    return cells


def build_tables(rows: list[dict[str, Any]], split: str = "") -> dict[str, Any]:
    """Headline, main, popularity-group and evaluator-plugin tables, CSV records and plot
    data; rows sorted by NDCG@10 on the split's main subset (:func:`main_subset`)."""
    entries, left_out = _entries(rows)
    masks = _masks(entries[0].first)
    counts = {name: int(mask.sum()) for name, mask in masks.items()}
    main_by = main_subset(split or rows[0].get("split", ""), counts)
    entries.sort(key=lambda e: (_mean(e.seed_values(main_by, "ndcg@10")) is None,
                                -(_mean(e.seed_values(main_by, "ndcg@10")) or 0.0)))
    metric_names = [m for m, _ in METRICS]
    cells = compute_cells(entries, masks, [s for s, _ in SUBSETS], metric_names)
    group_cells = compute_cells(entries, masks, POPULARITY_GROUPS, [m for m, _ in GROUP_METRICS])

    def header_for(subset: str, label: str, short: str) -> str:
        n = counts[subset]
        flag = f" (n={n}<{SMALL_SUBSET})" if 0 < n < SMALL_SUBSET else f" (n={n})"
        return f"{label} {short}{flag}"

    header = ["Method", "Backbone", "Profile", "Seeds"]
    header += [header_for(s, label, short) for s, label in SUBSETS for _, short in METRICS]
    header += ["Epochs run/best", "Stopped by", "Infer s/1k users", "Train s"]
    main, groups_table, csv_rows = [], [], []
    extra_names = sorted({k for r in rows for k in (r["extra_metrics"] or {})})
    extra_rows = []
    for i, entry in enumerate(entries):
        first = entry.first
        seeds = ",".join(str(r["seed"]) for r in entry.runs)
        line = [entry.name, first["backbone"], first["profile"], seeds]
        record = {"method": first["method"], "variant": variant(first), "tuned_trials": first["tuned_trials"],
                  "baseline": entry.baseline, "family": entry.family, "backbone": first["backbone"],
                  "profile": first["profile"], "seeds": seeds}
        for subset, _ in SUBSETS:
            for metric in metric_names:
                cell = cells[(i, subset, metric)]
                line.append(cell.text())
                prefix = f"{subset}_{metric}"
                record.update({f"{prefix}_mean": cell.mean, f"{prefix}_std": cell.std,
                               f"{prefix}_ci_low": cell.interval[0] if cell.interval else None,
                               f"{prefix}_ci_high": cell.interval[1] if cell.interval else None,
                               f"{prefix}_p_vs_best_baseline": cell.p_value,
                               f"{prefix}_cases": counts[subset]})
        infer = [r["infer_seconds_per_1k"] for r in entry.runs]
        train = [fit_seconds(r) for r in entry.runs]
        epochs, stopped = entry.convergence()
        line += [epochs, stopped, Cell(_mean(infer), _std(infer), None).text(3),
                 Cell(_mean(train), _std(train), None).text(1)]
        record.update({"epochs_run_best": epochs, "stopped_by": stopped, "converged": entry.converged})
        record["infer_seconds_per_1k"] = _mean(infer)
        record["train_seconds"] = _mean(train)
        main.append(line)
        csv_rows.append(record)
        groups_table.append([entry.name] + [group_cells[(i, g, m)].text() for g in POPULARITY_GROUPS
                                            for m, _ in GROUP_METRICS])
        extra_rows.append([entry.name] + [
            Cell(_mean([(r["extra_metrics"] or {}).get(e) for r in entry.runs]), None, None).text(3)
            for e in extra_names])
    shown = headline_subsets(counts)
    headline_header = (["Method", "Family"]
                       + [header_for(subset, label, short) for subset, label in SUBSETS if subset in shown
                          for _, short in HEADLINE_METRICS]
                       + ["Fit min", "Conv."])
    headline = []
    for i, entry in enumerate(entries):
        minutes = entry.train_minutes()
        headline.append([entry.short_name, entry.family]
                        + [cells[(i, subset, metric)].headline() for subset in shown for metric, _ in HEADLINE_METRICS]
                        + ["n/a" if minutes is None else f"{minutes:.1f}", "yes" if entry.converged else "no"])
    return {
        "entries": entries,
        "main_subset": main_by,
        "headline_subsets": shown,
        "headline_header": headline_header,
        "headline": headline,
        "cells": cells,
        "group_cells": group_cells,
        "counts": counts,
        "header": header,
        "main": main,
        "groups_header": ["Method"] + [header_for(g, g, m) for g in POPULARITY_GROUPS for _, m in GROUP_METRICS],
        "groups": groups_table,
        "extra_header": ["Method", *extra_names],
        "extra": extra_rows,
        "csv": csv_rows,
        "left_out": left_out,
    }


def board_stem(dataset: str, split: str) -> str:
    """File name stem of the board of ``dataset`` / ``split`` (also names its archive)."""
    return f"{dataset}-{split}".replace("/", "_").replace(":", "_").replace(",", "_").replace("=", "")


def _protocol_version(row: dict[str, Any]) -> int:
    return int(((row["info"] or {}).get("split") or {}).get("protocol_version", 1))


def current_digest(rows: list[dict[str, Any]]) -> str:
    """The digest a board renders: the split of the newest run made under the current
    protocol version (older protocols only when no current run exists)."""
    current = [r for r in rows if _protocol_version(r) == PROTOCOL_VERSION] or rows
    return max(current, key=lambda r: r["created_at"])["split_digest"]


def board_profile(rows: list[dict[str, Any]]) -> str:
    """The one profile a board shows: ``cpu`` (methods trained to convergence) when the board
    has such runs, otherwise the profile of its newest run. Rows of other profiles are listed
    under the runs left out, so budgets never mix in one table."""
    profiles = {r["profile"] for r in rows}
    return "cpu" if "cpu" in profiles else max(rows, key=lambda r: r["created_at"])["profile"]


def rerun_command(rows: list[dict[str, Any]]) -> str:
    """A command that re-runs ``rows`` (one method configuration) under the current code."""
    first = rows[0]
    seeds = ",".join(str(s) for s in sorted({r["seed"] for r in rows}))
    parts = ["genrec-bench run", f"--dataset {first['dataset']}", f"--split {first['split']}",
             f"--methods {first['method']}", f"--seeds {seeds}"]
    if first["profile"] != "tiny":
        parts.append(f"--profile {first['profile']}")
    if not first["exclude_seen"]:
        parts.append("--keep-seen")
    if first["tuned_trials"]:
        parts.append("--tuned")
    stored = (first.get("info") or {}).get("variant") or {}
    if stored:
        parts += [f"--param {shlex.quote(f'{key}={value}')}" for key, value in sorted(stored["params"].items())]
        parts.append(f"--variant {shlex.quote(stored['name'])}")
    return " ".join(parts)


def _pending_lines(methods: list[str], dataset: str, split: str, profile: str) -> list[str]:
    """The methods this board holds runs of, but none under its profile: what is left to run."""
    if not methods:
        return []
    return [f"## Not run under `{profile}` yet", "",
            f"This board has runs of these methods under another profile only: {', '.join(methods)}. "
            "They are listed below with their own re-run commands; under this board's profile:", "",
            f"`genrec-bench run --dataset {dataset} --split {split} --profile {profile} --methods "
            f"{','.join(methods)} --seeds 0,1,2`", ""]


def _never_run_lines(methods: list[str], dataset: str, split: str, profile: str) -> list[str]:
    """The registered methods without any run on this board (methods that take an argument,
    ``recbole:ARG``, cannot be listed): what a complete board still needs."""
    if not methods:
        return []
    return ["## Registered methods with no run on this board", "",
            (f"{len(methods)} registered methods have" if len(methods) > 1 else "1 registered method has")
            + f" no run here yet: {', '.join(methods)} (methods written "
            "`NAME:ARG`, such as `recbole:GRU4Rec` or `cornac:TIGER`, are not listed). Under this board's profile:",
            "", f"`genrec-bench run --dataset {dataset} --split {split} --profile {profile} --methods "
            f"{','.join(methods)} --seeds 0,1,2`", ""]


def _left_out_lines(left_out: list[tuple[dict[str, Any], str]]) -> list[str]:
    """Markdown list of the runs a board does not show, grouped, each with a re-run command."""
    if not left_out:
        return []
    grouped: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row, reason in left_out:
        grouped[(reason, row["method"] + variant_suffix(row), row["tuned_trials"], row["profile"],
                 row["exclude_seen"], row["split_digest"])].append(row)
    lines = ["## Runs left out of this board", "",
             "The store and the results archive keep them; they are not mixed into the table above.", ""]
    for (reason, method, trials, *_), rows in sorted(grouped.items(), key=lambda item: item[0]):
        seeds = ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
        name = method + (f" (tuned, {trials} trials)" if trials else "")
        lines.append(f"- {name}, seeds {seeds}: {reason}; re-run: `{rerun_command(rows)}`")
    return lines + [""]


def _convergence_lines(entries: list[Entry], curves: str | None) -> list[str]:
    """The convergence section: what the two columns mean, every row marked not converged
    with its seeds' stops, and the learning-curve plot."""
    lines = ["## Convergence", "",
             "`Epochs run/best` gives, per seed, the epochs a fit ran and the epoch validation chose; "
             "`Stopped by` counts why the seeds' fits ended: `patience` (validation NDCG@10 stopped "
             "improving: converged), `epoch cap` or `time cap` (a budget ended it), `not recorded` (a run "
             f"stored before fits recorded it). `{NOT_CONVERGED}` marks a row with any fit not stopped by "
             "patience, in every table of this board.", ""]
    unconverged = [e for e in entries if not e.converged]
    if unconverged:
        lines += ["Not converged:", ""]
        for entry in unconverged:
            stops = "; ".join(
                f"seed {run['seed']}: {f['stop']} after {f['epochs']} epochs (best {f['best']})"
                + (f", {f['seconds'] / 60:.0f} min" if f.get("seconds") else "")
                for run in entry.runs for f in fits(run) if f["stop"] != "patience")
            lines.append(f"- {entry.name}: {stops}")
        lines.append("")
    else:
        lines += ["Every fit on this board stopped by patience.", ""]
    if curves:
        lines += [f"![Validation NDCG@10 against training minutes]({curves})", ""]
    return lines


def evaluator_tables(tables: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per evaluator plugin (e.g. `coverage`, `tokenizer` diagnostics): its name,
    header and rows, the rows limited to the methods it reported on."""
    out = []
    for evaluator in sorted({name.split("/", 1)[0] for name in tables["extra_header"][1:]}):
        columns = [i for i, name in enumerate(tables["extra_header"]) if name.startswith(f"{evaluator}/")]
        rows = [[row[0]] + [row[i] for i in columns] for row in tables["extra"]
                if any(row[i] != "n/a" for i in columns)]
        out.append((evaluator, ["Method"] + [tables["extra_header"][i].split("/", 1)[1] for i in columns], rows))
    return out


def note_items(text: str) -> list[str]:
    """The bullets of a reading-notes file, each one string (continuation lines joined)."""
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line[2:].strip())
        elif line.strip() and items:
            items[-1] += " " + line.strip()
    return items


def _reading_file(out_dir: Path, stem: str) -> tuple[Path, str | None]:
    """The board's reading-notes file, ``<out_dir>/notes/<stem>.md``, and its text
    (``None`` where there is no file), read once for the markdown and HTML boards."""
    path = out_dir / "notes" / f"{stem}.md"
    return path, (path.read_text() if path.is_file() else None)


def _reading_notes(path: Path, text: str | None) -> list[str]:
    """The board's reading notes section: ``text``, read from ``path``
    (``<out_dir>/notes/<stem>.md``), written by people; nothing without a file.

    What the numbers mean and why a row differs from its paper: prose that cites the
    numbers above it and never replaces them (numbers come from runs only).
    """
    if text is None:
        return []
    return ["", "## Reading these results", "", f"(from `{path.as_posix()}`)", "", text.strip(), ""]


def _profile_notes(rows: list[dict]) -> list[str]:
    """Notes on what a row's profile and ranking mode mean, for the rows on this board."""
    notes = []
    if any(r["profile"] == "tiny" for r in rows):
        notes.append(
            "- Profile `tiny` is a 2-core CPU budget (small random-init transformers trained for minutes, "
            "on a sample of training prefixes where a method says so), not the papers' settings: its rows "
            "compare methods under that budget only. `paper` rows use the papers' model sizes.")
    if any(any(k.startswith("generation/") for k in (r["extra_metrics"] or {})) for r in rows):
        notes.append(
            "- Methods with a `generation` table write item identifiers token by token and rank by beam "
            "search (beam 20) constrained to the trie of valid identifiers, the user's seen items pruned in "
            "the trie; `invalid_id_share` is the share of generated identifiers naming no item (0 under "
            "constrained decoding; `--param recommender.decoding=unconstrained` measures it).")
    if any(r.get("tuned_trials") for r in rows):
        notes.append("- `(tuned, N trials)` rows use the best parameters of an N-trial Optuna study on "
                     "validation; other rows use each method's declared defaults.")
    return notes


def render(store: Store, dataset: str, split: str, out_dir: str | Path = "leaderboards") -> Path | None:
    """Write ``<out_dir>/<dataset>-<split>.md``, ``.csv`` and ``.png`` plots from the store.

    The board shows the runs of the current split digest (:func:`current_digest`) and
    lists every other run of the store with the reason and a command that re-runs it.
    """
    from benchmark.plots import plot_curves, plot_groups, plot_subsets

    all_rows = store.rows(dataset=dataset, split=split)
    if not all_rows:
        return None
    all_rows.sort(key=lambda r: (r["created_at"], r["id"]))
    latest_digest = current_digest(all_rows)
    rows = [r for r in all_rows if r["split_digest"] == latest_digest]
    other_split = [(r, f"split digest `{r['split_digest']}` (protocol version {_protocol_version(r)}), "
                       f"not the board's `{latest_digest}`") for r in all_rows if r["split_digest"] != latest_digest]
    profile = board_profile(rows)
    other_split += [(r, f"profile `{r['profile']}`; this board shows `{profile}` rows") for r in rows
                    if r["profile"] != profile]
    shown = {r["method"] for r in rows if r["profile"] == profile}
    pending = sorted({r["method"] for r in rows if r["profile"] != profile and not r["tuned_trials"]} - shown)
    present = {r["method"] for r in rows}
    never = sorted(name for name, spec in get_methods().items() if not spec.argument_param and name not in present)
    rows = [r for r in rows if r["profile"] == profile]
    tables = build_tables(rows, split)
    profile_notes = _profile_notes(rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = board_stem(dataset, split)
    title = f"{dataset}, {split}"
    curves_path = out_dir / f"{stem}-curves.png"
    if not plot_curves(tables, curves_path, title):
        curves_path.unlink(missing_ok=True)
    latest = rows[-1]
    counts = tables["counts"]
    versions = latest["package_versions"] or {}
    commands = sorted({r["command"] for r in rows if r["command"]})
    ranking = {r["exclude_seen"] for r in rows}
    small = [s for s, _ in SUBSETS if 0 < counts[s] < SMALL_SUBSET]
    split_info = (latest["info"] or {}).get("split", {})
    produced = ("Produced by: " + "; ".join(f"`{c}`" for c in commands)) if commands else "Produced by: (not recorded)"
    machines = Counter(r["machine"] for r in rows)
    facts = [
        f"Date of the latest run: {latest['created_at']}",
        "Machine: " + "; ".join(
            f"{m} ({n} run{'s' if n > 1 else ''})" if len(machines) > 1 else m
            for m, n in sorted(machines.items())),
        f"Profile: {', '.join(sorted({r['profile'] for r in rows}))}",
        "Packages: " + ", ".join(f"{p} {versions.get(p, '?')}" for p in SHOWN_VERSIONS),
        f"Split: {split_info.get('protocol', split)}; protocol version {split_info.get('protocol_version', 1)}; "
        f"model input capped at {split_info.get('max_history', 20)} items; digest `{latest_digest}`; "
        f"test cases: all {counts['all']}, warm {counts['warm']}, cold {counts['cold']}, "
        f"new-user {counts['new-user']}",
        "Ranking protocol: full catalog; "
        + ("the user's seen items excluded (default)" if ranking == {True}
           else "the user's seen items stay rankable (`--keep-seen`, the generative papers' protocol)"
           if ranking == {False} else "mixed (see CSV)")
        + "; ties rank the target below every item with an equal score (pessimistic)",
    ]
    if "cold_items" in split_info:
        facts.append(f"Cold items: {len(split_info['cold_items'])} (share {split_info['share']}, "
                     f"seed {split_info['seed']}); their ids are stored with every run")
    lines = [f"# Leaderboard: {dataset}, split `{split}`", "", produced, "", *(f"- {fact}" for fact in facts)]
    main_label = dict(SUBSETS)[tables["main_subset"]]
    lines += [
        "",
        "## Headline",
        "",
        f"Sorted by {main_label} N@10. A cell: the mean over seeds (three decimals), `*` / `†` significantly "
        "better / worse than the best baseline, and the 95% bootstrap interval over test cases. "
        f"Fit min: minutes of fitting per seed; Conv.: every fit stopped by patience (`{NOT_CONVERGED}` if not). "
        f"Every metric, with four decimals and the spread over seeds, follows; the same board as a web page: "
        f"[{stem}.html]({stem}.html).",
        "",
        compact_table(tables["headline"], tables["headline_header"]),
        "",
        "## Every metric",
        "",
        tabulate(tables["main"], headers=tables["header"], tablefmt="github", disable_numparse=True),
        "",
        f"![NDCG@10 with 95% intervals]({stem}.png)",
        "",
        *_convergence_lines(tables["entries"], curves_path.name if curves_path.exists() else None),
        "## Recall@10 and NDCG@10 by item popularity group (G1 most popular ... G4 least, training counts)",
        "",
        tabulate(tables["groups"], headers=tables["groups_header"], tablefmt="github", disable_numparse=True),
        "",
        f"![Popularity groups]({stem}-groups.png)",
        "",
    ]
    diagnostics = evaluator_tables(tables)
    for evaluator, header, rows in diagnostics:
        lines += [
            f"## Evaluator `{evaluator}` (mean over seeds)",
            "",
            tabulate(rows, headers=header, tablefmt="github", disable_numparse=True),
            "",
        ]
    notes = [
        "- A cell reads `mean ±std [low, high]`: the mean over seeds, the sample standard deviation "
        "across seeds, and a 95% percentile bootstrap interval over test cases "
        f"({BOOTSTRAP_SAMPLES:,} resamples, seed 0) of each case's value averaged over seeds.",
        "- `*` / `†`: significantly better / worse than the best baseline of that column "
        f"(paired bootstrap test over the same test cases, {BOOTSTRAP_SAMPLES:,} resamples, two-sided, "
        f"p < {SIGNIFICANCE}). The best baseline itself carries no mark.",
        f"- `(n=...<{SMALL_SUBSET})` in a header flags a subset with fewer than {SMALL_SUBSET} test cases: "
        "too few to trust." + (f" Flagged here: {', '.join(small)}." if small else ""),
        "- \"n/a\" marks an empty subset (no case to score), never a zero.",
        "- R = Recall, N = NDCG at the given cut-off; one target per test case. Warm: the target has "
        "training interactions; cold: it has none.",
        "- Infer s/1k users: seconds to rank the full catalog for 1,000 test cases; Train s: tokenizer "
        "plus recommender fitting, validation included.",
        "- Model selection (early stopping) used validation cases only; validation cases hold no test "
        "interaction.",
        "- New-user: test cases whose user has no training interaction. Sequence models read the input "
        "history; user-ID models fold such users in from it (the RecBole bridge: the mean of the history "
        "items' final embeddings), never a shared padding user.",
        "- Seen items: preprocessing keeps one (user, item) pair, so a target is never in its user's "
        "history; leaving history items rankable (`--keep-seen`) only penalises models that score them.",
        *profile_notes,
    ]
    reading, reading_text = _reading_file(out_dir, stem)
    lines += [
        "## Notes",
        "",
        *notes,
        "",
        *_pending_lines(pending, dataset, split, profile),
        *_never_run_lines(never, dataset, split, profile),
        *_left_out_lines(tables["left_out"] + other_split),
        *_reading_notes(reading, reading_text),
    ]
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(lines))
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(tables["csv"][0]))
        writer.writeheader()
        writer.writerows(tables["csv"])
    write_html(out_dir / f"{stem}.html", tables, dataset=dataset, split=split, produced=produced, facts=facts,
               subsets=SUBSETS, metrics=METRICS, group_metrics=GROUP_METRICS, rerun_command=rerun_command,
               notes=[note[2:] for note in notes], diagnostics=diagnostics,
               reading=note_items(reading_text) if reading_text is not None else [])
    plot_subsets(tables, out_dir / f"{stem}.png", title)
    plot_groups(tables, out_dir / f"{stem}-groups.png", title)
    return md_path
