"""The leaderboard as one self-contained web page, rendered from the same tables as the
markdown board (:func:`benchmark.leaderboard.build_tables`), so both show the same digits.

The page needs no network: styles, script and learning curves (inline SVG) are in the
file. It offers a subset selector (all / warm / cold / new-user and the popularity
groups, each a table of its own), columns sorted by a click, each cell's 95% interval
drawn as a bar, and per method its parameters, seeds, epochs, learning curve, backbone
and the commands that produced and re-run it. The template is
``benchmark/templates/board.html.j2`` (Jinja2, autoescaped).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from benchmark.data.splits import POPULARITY_GROUPS

TEMPLATES = Path(__file__).parent / "templates"
CODE = re.compile(r"`([^`]*)`")
CURVE_WIDTH, CURVE_HEIGHT, CURVE_PAD = 360, 150, 28
SEED_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def inline_code(text: str) -> Markup:
    """Escape ``text`` and show its backtick spans as ``<code>`` (the markdown board's code)."""
    parts = CODE.split(str(text))
    return Markup("").join(escape(p) if i % 2 == 0 else Markup("<code>") + escape(p) + Markup("</code>")
                           for i, p in enumerate(parts))


BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline_markdown(text: str) -> Markup:
    """A reading note's inline markdown as the markdown board shows it: ``**bold**`` as
    ``<strong>`` (code spans inside it kept), backtick spans as ``<code>``, everything else
    escaped."""
    pieces = BOLD.split(str(text))
    return Markup("").join(inline_code(p) if i % 2 == 0 else Markup("<strong>") + inline_code(p) + Markup("</strong>")
                           for i, p in enumerate(pieces))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _column_cells(tables: dict[str, Any], key: str, subset: str, metric: str) -> list[dict[str, Any]]:
    """One column's cells: the markdown text, the sort value and the interval bar's place,
    scaled to the column's widest interval."""
    source = tables["cells"] if key == "cells" else tables["group_cells"]
    entries = tables["entries"]
    cells = [source[(i, subset, metric)] for i in range(len(entries))]
    top = max([c.interval[1] for c in cells if c.interval] + [c.mean for c in cells if c.mean is not None] + [0.0])
    top = top or 1.0
    out = []
    for cell in cells:
        bar = None
        if cell.interval is not None and cell.mean is not None:
            low, high = cell.interval
            bar = {"left": round(100 * low / top, 2), "width": round(max(0.5, 100 * (high - low) / top), 2),
                   "mean": round(100 * cell.mean / top, 2)}
        out.append({"text": cell.text(), "value": "" if cell.mean is None else repr(cell.mean), "bar": bar,
                    "mark": cell.mark})
    return out


def views(tables: dict[str, Any], subsets: tuple[tuple[str, str], ...], metrics: tuple[tuple[str, str], ...],
          group_metrics: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """The selectable tables: every subset with cases (its metrics as the markdown board's
    main table), then every popularity group (Recall@10 and NDCG@10, as its group table)."""
    counts = tables["counts"]
    out = []
    for subset, label in subsets:
        if not counts[subset]:
            continue
        out.append({"key": subset, "label": label, "n": counts[subset], "metrics": metrics,
                    "columns": [_column_cells(tables, "cells", subset, m) for m, _ in metrics]})
    for group in POPULARITY_GROUPS:
        if not counts.get(group):
            continue
        out.append({"key": group, "label": f"{group} (popularity group)", "n": counts[group],
                    "metrics": group_metrics,
                    "columns": [_column_cells(tables, "group_cells", group, m) for m, _ in group_metrics]})
    for view in out:
        view["rows"] = [[column[i] for column in view["columns"]] for i in range(len(tables["entries"]))]
    return out


def curve_points(run: dict[str, Any]) -> list[tuple[float, float]]:
    """(training minutes, validation NDCG@10) of each validated epoch a run recorded with its
    time; empty for runs that recorded none."""
    records = ((run.get("info") or {}).get("epochs")) or []
    return [(r["seconds"] / 60, r["ndcg@10"]) for r in records if "seconds" in r and "ndcg@10" in r]


def curve_svg(entry) -> Markup | None:
    """Validation NDCG@10 against training minutes, one line per seed, as inline SVG."""
    lines = [(run["seed"], curve_points(run)) for run in entry.runs]
    lines = [(seed, points) for seed, points in lines if points]
    if not lines:
        return None
    xs = [x for _, points in lines for x, _ in points]
    ys = [y for _, points in lines for _, y in points]
    x_top, y_low, y_top = max(xs) or 1.0, min(ys), max(ys)
    span = (y_top - y_low) or 1.0
    width, height = CURVE_WIDTH - 2 * CURVE_PAD, CURVE_HEIGHT - 2 * CURVE_PAD

    def point(x: float, y: float) -> str:
        return f"{CURVE_PAD + width * x / x_top:.1f},{CURVE_PAD + height * (1 - (y - y_low) / span):.1f}"

    parts = [f'<svg class="curve" width="{CURVE_WIDTH}" height="{CURVE_HEIGHT}" role="img" '
             f'aria-label="validation NDCG@10 against training minutes">',
             f'<rect x="{CURVE_PAD}" y="{CURVE_PAD}" width="{width}" height="{height}" class="frame"/>']
    for i, (seed, points) in enumerate(lines):
        colour = SEED_COLOURS[i % len(SEED_COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                     f'points="{" ".join(point(x, y) for x, y in points)}"><title>seed {seed}</title></polyline>')
        best = max(points, key=lambda p: p[1])
        cx, cy = point(*best).split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        parts.append(f'<text x="{CURVE_PAD + width + 4}" y="{CURVE_PAD + 12 * (i + 1)}" fill="{colour}">'
                     f"seed {seed}</text>")
    parts += [f'<text x="{CURVE_PAD}" y="{CURVE_HEIGHT - 8}">0</text>',
              f'<text x="{CURVE_PAD + width}" y="{CURVE_HEIGHT - 8}" text-anchor="end">{x_top:.1f} min</text>',
              f'<text x="2" y="{CURVE_PAD + 4}">{y_top:.3f}</text>',
              f'<text x="2" y="{CURVE_PAD + height}">{y_low:.3f}</text>', "</svg>"]
    return Markup("".join(parts))


def details(tables: dict[str, Any], rerun_command) -> list[dict[str, Any]]:
    """Per method: what produced its row and how it trained."""
    out = []
    for entry in tables["entries"]:
        first = entry.first
        epochs, stopped = entry.convergence()
        out.append({
            "id": slug(entry.name), "name": entry.name, "family": entry.family, "backbone": first["backbone"],
            "profile": first["profile"], "seeds": ", ".join(str(r["seed"]) for r in entry.runs),
            "epochs": epochs, "stopped": stopped, "converged": entry.converged,
            "params": json.dumps(first["params"], indent=1, sort_keys=True),
            "commands": sorted({r["command"] for r in entry.runs if r["command"]}),
            "rerun": rerun_command(entry.runs), "curve": curve_svg(entry),
            "created": max(r["created_at"] for r in entry.runs),
        })
    return out


def write_html(path: Path, tables: dict[str, Any], *, dataset: str, split: str, produced: str,
               facts: list[str], subsets, metrics, group_metrics, rerun_command, notes: list[str],
               diagnostics: list[tuple[str, list[str], list[list[str]]]] = (), reading: list[str] = ()) -> Path:
    """Render the board's page to ``path``."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                              trim_blocks=True, lstrip_blocks=True)
    environment.filters["code"] = inline_code
    environment.filters["markdown"] = inline_markdown
    template = environment.get_template("board.html.j2")
    entries = tables["entries"]
    rows = []
    for entry in entries:
        minutes = entry.train_minutes()
        rows.append({"id": slug(entry.name), "name": entry.name, "family": entry.family,
                     "minutes": "n/a" if minutes is None else f"{minutes:.1f}",
                     "minutes_value": "" if minutes is None else repr(minutes),
                     "converged": "yes" if entry.converged else "no"})
    html = template.render(
        dataset=dataset, split=split, produced=produced, facts=facts, rows=rows,
        views=views(tables, subsets, metrics, group_metrics), default_view=tables["main_subset"],
        details=details(tables, rerun_command), notes=notes, diagnostics=diagnostics, reading=reading,
    )
    path.write_text(html)
    return path
