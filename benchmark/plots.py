"""Figures written next to the leaderboard tables (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.data.splits import POPULARITY_GROUPS  # noqa: E402
from benchmark.html_board import curve_points  # noqa: E402


def _bars(ax, entries, cells, columns, metric: str) -> None:
    width = 0.8 / max(1, len(entries))
    x = np.arange(len(columns))
    for i, entry in enumerate(entries):
        means, errors = [], [[], []]
        for column in columns:
            cell = cells[(i, column, metric)]
            mean = cell.mean if cell.mean is not None else 0.0
            means.append(mean)
            low, high = cell.interval if cell.interval else (mean, mean)
            errors[0].append(max(0.0, mean - low))
            errors[1].append(max(0.0, high - mean))
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=errors, capsize=2, label=entry.name)
    ax.set_xticks(x)
    ax.set_ylabel(metric.replace("ndcg", "NDCG").replace("recall", "Recall"))


def plot_subsets(tables: dict[str, Any], path: Path, title: str) -> None:
    """NDCG@10 for all / warm / cold per method, 95% bootstrap intervals as error bars."""
    fig, ax = plt.subplots(figsize=(7, 4))
    columns = ["all", "warm", "cold"]
    _bars(ax, tables["entries"], tables["cells"], columns, "ndcg@10")
    ax.set_xticklabels([f"{c} (n={tables['counts'][c]})" for c in columns])
    ax.set_title(f"{title}: NDCG@10, 95% intervals")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_groups(tables: dict[str, Any], path: Path, title: str) -> None:
    """Recall@10 and NDCG@10 per popularity group G1-G4 per method."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("recall@10", "ndcg@10")):
        _bars(ax, tables["entries"], tables["group_cells"], list(POPULARITY_GROUPS), metric)
        ax.set_xticklabels([f"{g} (n={tables['counts'][g]})" for g in POPULARITY_GROUPS])
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: item popularity groups (G1 most popular)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(tables: dict[str, Any], path: Path, title: str) -> bool:
    """Validation NDCG@10 against training minutes, one colour per method and one line per
    seed, a dot at each seed's chosen epoch; False (nothing written) when no run recorded
    timed epochs."""
    lines = [(i, entry, curve_points(run)) for i, entry in enumerate(tables["entries"]) for run in entry.runs]
    lines = [(i, entry, points) for i, entry, points in lines if points]
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(9, 5))
    colours = plt.get_cmap("tab10")
    labelled = set()
    for i, entry, points in lines:
        x, y = zip(*points)
        colour = colours(i % 10)
        style = ("-", "--", ":")[(i // 10) % 3]  # past ten methods the colours repeat with another line style
        ax.plot(x, y, color=colour, linestyle=style, linewidth=1, alpha=0.8,
                label=None if i in labelled else entry.name)
        best = int(np.argmax(y))
        ax.plot([x[best]], [y[best]], "o", color=colour, markersize=3)
        labelled.add(i)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("training minutes (validation included; symlog scale)")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title(f"{title}: learning curves (one line per seed, dot = chosen epoch)")
    ax.legend(fontsize=6, ncol=2, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
