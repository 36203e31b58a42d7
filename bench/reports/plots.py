"""The pictures of a leaderboard: reproduced against published per method, and the rows of each
table cell side by side. Both take the rows ``bench.reports.leaderboard.build_rows`` makes and
write a PNG atomically; both say in their title that smoke and reduced budgets are not the
paper's protocol."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.hashing import atomic_target

if TYPE_CHECKING:
    from bench.reports.leaderboard import Row

BUDGET_MARKERS = {"paper": "o", "reduced": "s", "smoke": "^"}
BUDGET_COLOURS = {"paper": "tab:green", "reduced": "tab:orange", "smoke": "tab:blue"}
CAVEAT = "smoke/reduced budgets are not the paper's protocol"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _std(value: float | None) -> float:
    return 0.0 if value is None or math.isnan(value) else value


def _save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically and close it."""
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    return path


def short_name(row: Row) -> str:
    """The recipe's name without its dataset and ipc: ``gm-mnist-ipc1`` -> ``gm``,
    ``gtn-gm-mnist-fixed`` -> ``gtn-gm-fixed`` (a labelled variant keeps its label)."""
    recipe = row.recipe
    name = recipe.name.replace(f"-{recipe.dataset}", "", 1)
    return name if recipe.ipc is None else name.replace(f"-ipc{recipe.ipc}", "", 1)


def _in_row_order(rows: list[Row], name: Callable[[Row], str]) -> list[str]:
    """The distinct ``name(row)`` of ``rows`` (a method, a recipe's short name) in the table's
    row order (coresets, methods, whole dataset), then alphabetically."""
    order = {name(r): r.recipe.leaderboard_row for r in rows}
    return sorted(order, key=lambda n: (order[n], n))


def plot_reproduced_vs_published(rows: list[Row], title: str, path: Path) -> Path | None:
    """Scatter of reproduced (y) against published (x) accuracy with error bars (±1 std), one
    panel per method in the table's row order, one colour per dataset, one marker per budget;
    ``None`` if no row has both numbers."""
    points = [r for r in rows if r.run is not None and r.recipe.published is not None]
    if not points:
        return None
    plt = _pyplot()
    methods = _in_row_order(points, lambda r: r.recipe.method)
    datasets = sorted({r.run.dataset_name for r in points})
    colours = dict(zip(datasets, plt.cm.tab10.colors, strict=False))
    fig, axes = plt.subplots(
        1, len(methods), squeeze=False, figsize=(4.2 * len(methods), 4.2), sharey=True
    )
    for ax, method in zip(axes[0], methods, strict=True):
        ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--", label="reproduced = published")
        seen = set()
        for r in (r for r in points if r.recipe.method == method):
            pub, run = r.recipe.published, r.run
            label = f"{run.dataset_name} ({run.budget})"
            ax.errorbar(
                pub.mean,
                r.mean,
                xerr=pub.std or 0.0,
                yerr=_std(r.std),
                fmt=BUDGET_MARKERS.get(run.budget, "x"),
                color=colours[run.dataset_name],
                capsize=3,
                label=None if label in seen else label,
            )
            seen.add(label)
            ipc = "whole" if r.recipe.ipc is None else f"ipc {r.recipe.ipc}"
            ax.annotate(
                ipc, (pub.mean, r.mean), fontsize=7, xytext=(4, -8), textcoords="offset points"
            )
        ax.set_title(method)
        ax.set_xlabel("published accuracy (%)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("reproduced accuracy (%)")
    fig.suptitle(f"{title}: {CAVEAT}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def cell_panels(rows: list[Row]) -> dict[tuple[str, int], list[Row]]:
    """The rows of each table cell, ``(dataset, ipc) -> rows``, for the cells where at least
    two methods have a measured run. A whole-dataset row (``ipc`` None) joins every cell of
    its dataset: it is the upper bound each cell is read against."""
    panels: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        if row.recipe.ipc is not None:
            panels.setdefault((row.recipe.dataset, row.recipe.ipc), []).append(row)
    for row in rows:
        if row.recipe.ipc is None:
            for (dataset, _), members in panels.items():
                if dataset == row.recipe.dataset:
                    members.append(row)
    return {
        key: members
        for key, members in sorted(panels.items())
        if len({r.recipe.method for r in members if r.run is not None}) >= 2
    }


def plot_cells(
    rows: list[Row], title: str, path: Path, dataset_names: dict[str, str] | None = None
) -> Path | None:
    """One panel per table cell (dataset × ipc; ``cell_panels``) with its recipes side by side
    in the table's row order, each named without dataset and ipc (``gm``, ``gtn-gm-fixed``):
    the published mean as a grey bar (±1 std), each measured run of the recipe as a marker
    coloured by budget (±1 std over its networks), so methods are compared within a cell;
    panels titled with ``dataset_names`` (dataset key -> display name) where given.
    ``None`` where no cell has two measured methods."""
    panels = cell_panels(rows)
    if not panels:
        return None
    plt = _pyplot()
    datasets = sorted({d for d, _ in panels})
    ipcs = sorted({i for _, i in panels})
    fig, axes = plt.subplots(
        len(datasets),
        len(ipcs),
        squeeze=False,
        figsize=(6.0 * len(ipcs), 3.6 * len(datasets) + 0.6),
        sharey=True,
    )
    for ax in axes.flat:
        ax.set_visible(False)
    seen: set[str] = set()
    for (dataset, ipc), members in panels.items():
        ax = axes[datasets.index(dataset)][ipcs.index(ipc)]
        ax.set_visible(True)
        names = _in_row_order(members, short_name)
        for x, name in enumerate(names):
            mine = [r for r in members if short_name(r) == name]
            pub = mine[0].recipe.published
            if pub is not None:
                label = "published"
                ax.bar(
                    x,
                    pub.mean,
                    0.6,
                    yerr=pub.std or 0.0,
                    color="0.85",
                    capsize=3,
                    label=None if label in seen else label,
                )
                seen.add(label)
            measured = [r for r in mine if r.run is not None]
            for k, r in enumerate(measured):
                offset = (k - (len(measured) - 1) / 2) * 0.15
                label = f"{r.run.budget} ({r.run.dataset_name})"
                ax.errorbar(
                    x + offset,
                    r.mean,
                    yerr=_std(r.std),
                    fmt=BUDGET_MARKERS.get(r.run.budget, "x"),
                    color=BUDGET_COLOURS.get(r.run.budget, "black"),
                    capsize=3,
                    label=None if label in seen else label,
                )
                seen.add(label)
        ax.set_xticks(range(len(names)), names, fontsize=8, rotation=30 if len(names) > 6 else 0)
        ax.set_title(f"{(dataset_names or {}).get(dataset, dataset)}, ipc {ipc}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3, axis="y")
    for row_axes in axes:
        row_axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(f"{title}, per cell\n{CAVEAT}", fontsize=9)
    fig.tight_layout(rect=(0, 0.12 / len(datasets), 1, 1))
    fig.legend(fontsize=7, loc="lower center", ncol=2, frameon=False)
    return _save(fig, path)
