"""Leaderboards from the results store: markdown and CSV tables per dataset and split.

One row per method configuration (method, profile, parameters, ranking rule); each cell
is the mean over seeds with the standard deviation across seeds. Empty subsets read
"n/a". The header states the commands, date, machine, profile and package versions.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.data.splits import POPULARITY_GROUPS
from benchmark.store import Store

SUBSETS = (("all", "All"), ("warm", "Warm"), ("cold", "Cold"))
METRICS = (("recall@5", "R@5"), ("recall@10", "R@10"), ("ndcg@5", "N@5"), ("ndcg@10", "N@10"))
SHOWN_VERSIONS = ("genrec-bench", "torch", "recbole", "transformers", "peft", "numpy", "pandas",
                  "optuna")


def _group_rows(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = (row["method"], row["profile"], row["exclude_seen"], row["tuned_trials"],
               json.dumps(row["params"], sort_keys=True))
        # Keep the latest run per seed: a re-run replaces, never double counts.
        groups[key] = [r for r in groups[key] if r["seed"] != row["seed"]] + [row]
    # One row per method, profile, ranking rule and tuned/untuned: the configuration run
    # most recently. Older configurations stay in the store and the CSV of their time.
    latest: dict[tuple, list[dict[str, Any]]] = {}
    for group in groups.values():
        first = group[-1]
        key = (first["method"], first["profile"], first["exclude_seen"], first["tuned_trials"] > 0)
        if key not in latest or max(r["id"] for r in group) > max(r["id"] for r in latest[key]):
            latest[key] = group
    return list(latest.values())


def _cell(values: list[float | None], digits: int = 4) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    mean = float(np.mean(present))
    if len(present) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(np.std(present, ddof=1)):.{digits}f}"


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def build_tables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Main table, popularity-group table and extra-metric table as lists of rows."""
    groups = sorted(
        _group_rows(rows),
        key=lambda g: -(_mean([r["metrics"]["all"]["ndcg@10"] for r in g]) or 0.0),
    )
    header = ["Method", "Backbone", "Profile", "Seeds"]
    header += [f"{label} {m}" for _, label in SUBSETS for _, m in METRICS]
    header += ["Infer s/1k users", "Train s"]
    main, groups_table, extra_rows, csv_rows = [], [], [], []
    extra_names = sorted({k for r in rows for k in (r["extra_metrics"] or {})})
    for group in groups:
        first = group[-1]
        name = first["method"] + (f" (tuned, {first['tuned_trials']} trials)" if first["tuned_trials"] else "")
        seeds = ",".join(str(r["seed"]) for r in sorted(group, key=lambda r: r["seed"]))
        line = [name, first["backbone"], first["profile"], seeds]
        record = {"method": first["method"], "tuned_trials": first["tuned_trials"],
                  "backbone": first["backbone"], "profile": first["profile"], "seeds": seeds}
        for subset, _ in SUBSETS:
            for metric, _ in METRICS:
                values = [r["metrics"][subset][metric] for r in group]
                line.append(_cell(values))
                record[f"{subset}_{metric}_mean"] = _mean(values)
                present = [v for v in values if v is not None]
                record[f"{subset}_{metric}_std"] = (
                    float(np.std(present, ddof=1)) if len(present) > 1 else None
                )
        line.append(_cell([r["infer_seconds_per_1k"] for r in group], 3))
        line.append(_cell([r["train_seconds"] for r in group], 1))
        record["infer_seconds_per_1k"] = _mean([r["infer_seconds_per_1k"] for r in group])
        record["train_seconds"] = _mean([r["train_seconds"] for r in group])
        main.append(line)
        csv_rows.append(record)
        groups_table.append(
            [name] + [_cell([r["metrics"][g]["ndcg@10"] for r in group]) for g in POPULARITY_GROUPS]
        )
        extra_rows.append(
            [name] + [_cell([(r["extra_metrics"] or {}).get(e) for r in group], 3) for e in extra_names]
        )
    return {
        "header": header,
        "main": main,
        "groups": groups_table,
        "extra_header": ["Method", *extra_names],
        "extra": extra_rows,
        "csv": csv_rows,
    }


def render(store: Store, dataset: str, split: str, out_dir: str | Path = "leaderboards") -> Path | None:
    """Write ``<out_dir>/<dataset>-<split>.md`` and ``.csv`` from the store; return the md path."""
    rows = store.rows(dataset=dataset, split=split)
    if not rows:
        return None
    latest_digest = rows[-1]["split_digest"]
    rows = [r for r in rows if r["split_digest"] == latest_digest]
    tables = build_tables(rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{dataset}-{split}".replace("/", "_").replace(":", "_")
    latest = rows[-1]
    counts = latest["metrics"]
    versions = latest["package_versions"] or {}
    commands = sorted({r["command"] for r in rows if r["command"]})
    ranking = {r["exclude_seen"] for r in rows}
    lines = [
        f"# Leaderboard: {dataset}, split `{split}`",
        "",
        "Produced by: " + "; ".join(f"`{c}`" for c in commands) if commands else "Produced by: (not recorded)",
        "",
        f"- Date of the latest run: {latest['created_at']}",
        f"- Machine: {', '.join(sorted({r['machine'] for r in rows}))}",
        f"- Profile: {', '.join(sorted({r['profile'] for r in rows}))}",
        "- Packages: " + ", ".join(f"{p} {versions.get(p, '?')}" for p in SHOWN_VERSIONS),
        f"- Split digest: `{latest_digest}`; test cases: all {counts['all']['cases']}, "
        f"warm {counts['warm']['cases']}, cold {counts['cold']['cases']}",
        "- Ranking: full catalog; "
        + ("seen items excluded" if ranking == {True} else "items in the user's history stay rankable"
           if ranking == {False} else "mixed (see CSV)"),
        "",
        tabulate(tables["main"], headers=tables["header"], tablefmt="github", disable_numparse=True),
        "",
        "## NDCG@10 by item popularity group (G1 most popular ... G4 least, from training counts)",
        "",
        tabulate(tables["groups"], headers=["Method", *POPULARITY_GROUPS], tablefmt="github",
                 disable_numparse=True),
        "",
    ]
    if len(tables["extra_header"]) > 1:
        lines += [
            "## Evaluator plugins",
            "",
            tabulate(tables["extra"], headers=tables["extra_header"], tablefmt="github",
                     disable_numparse=True),
            "",
        ]
    lines += [
        "## Notes",
        "",
        "- Cells are the mean over seeds ± the sample standard deviation across seeds; "
        "\"n/a\" marks an empty subset (no case to score), never a zero.",
        "- R = Recall, N = NDCG at the given cut-off; one target per test case.",
        "- Warm: target item has training interactions; cold: it has none.",
        "- Infer s/1k users: seconds to rank the full catalog for 1,000 test cases; "
        "Train s: tokenizer plus recommender fitting, validation included.",
        "- Model selection (early stopping) used validation cases only.",
        "",
    ]
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(lines))
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(tables["csv"][0]))
        writer.writeheader()
        writer.writerows(tables["csv"])
    return md_path
