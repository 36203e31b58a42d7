"""Leaderboards generated from MLflow (``python -m bench leaderboard``).

Every recipe is one row of its leaderboard table (``leaderboard`` key of the recipe, e.g.
``dc-table1``). The published number comes from the recipe; the reproduced number, its budget,
verdict and run id come only from finished parent runs in the tracking store. A recipe with no
run shows "—" where a measured number would stand, never the published one. For each recipe,
dataset copy and budget the newest finished run is shown.

Outputs, per leaderboard ``<name>``: ``<name>.md`` and ``<name>.tex`` (the same table through
one renderer), ``<name>.png`` (reproduced against published, with error bars, one panel per
method, one colour per dataset), and ``grids/<recipe>.png`` (the synthetic images of the run
shown; point-cloud methods add ``grids/<recipe>-points.png``, the clouds at the start and end
and their projections); ``runs/<run id>.json``, the record (tags with commit, hardware and
versions; params; metrics) of every run shown; plus ``README.md`` indexing them.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from bench.data.synthetic import GRID
from bench.run.tracking import Tracker
from bench.spec.recipes import (
    Recipe,
    format_published,
    format_source,
    ipc_label,
    load_recipe,
    recipe_names,
)

MISSING = "—"
BUDGET_ORDER = {"paper": 0, "reduced": 1, "smoke": 2}
HEADERS = (
    "recipe",
    "dataset",
    "ipc",
    "published (%)",
    "source",
    "reproduced (%)",
    "budget",
    "verdict",
    "run",
)


@dataclass(frozen=True)
class MeasuredRun:
    """What the leaderboard shows of one finished parent run (read from MLflow)."""

    run_id: str
    recipe: str
    dataset_name: str
    budget: str
    model: str
    mean: float
    std: float | None
    n: int
    verdict: str
    commit: str
    hardware: str
    start_time: int
    """milliseconds since the epoch (MLflow's), to pick the newest run"""
    final_mean: float | None = None
    """where ``mean`` is the best evaluation during distillation (recipes whose published
    number is that statistic, MTT's) or on a stream of generator batches (GTN's): the final
    synthetic set's mean accuracy, shown beside it"""
    statistic: str = "final"
    """what ``mean`` is (``bench.spec.recipes.STATISTICS``)"""


@dataclass(frozen=True)
class Row:
    """One table row: a recipe and the run measured for it (``None``: not measured)."""

    recipe: Recipe
    run: MeasuredRun | None


def read_runs(tracker: Tracker) -> list[MeasuredRun]:
    """Finished reproduction (parent) runs of the store, newest first."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=50000,
    )
    measured = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        model = (tags.get("eval_models") or "ConvNet").split()[0]
        if "mlflow.parentRunId" in tags or f"eval/{model}/acc" not in metrics:
            continue
        # the statistic the published number measures (bench.spec.recipes.STATISTICS)
        key, final, statistic = f"eval/{model}/acc", None, "final"
        for other in ("max_over_evaluations", "stream"):
            if f"eval/{model}/{other}_acc" in metrics:
                key, final, statistic = f"eval/{model}/{other}_acc", metrics[key], other
        measured.append(
            MeasuredRun(
                run_id=run.info.run_id,
                recipe=tags.get("recipe", ""),
                dataset_name=tags.get("dataset_name", tags.get("dataset", "")),
                budget=tags.get("budget", ""),
                model=model,
                mean=metrics[key],
                std=metrics.get(f"{key}_std"),
                n=int(metrics.get(key.replace("acc", "n"), 1)),
                verdict=tags.get("verdict", ""),
                commit=tags.get("git_commit", ""),
                hardware=tags.get("hardware", ""),
                start_time=run.info.start_time,
                final_mean=final,
                statistic=statistic,
            )
        )
    return measured


def build_rows(recipes: list[Recipe], runs: list[MeasuredRun]) -> list[Row]:
    """One row per recipe and measured (dataset copy, budget), newest run each, budgets in the
    order paper, reduced, smoke; one "—" row per recipe without runs."""
    newest: dict[tuple[str, str, str], MeasuredRun] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        newest[(run.recipe, run.dataset_name, run.budget)] = run
    rows = []
    for recipe in recipes:
        mine = [r for key, r in newest.items() if key[0] == recipe.name]
        mine.sort(key=lambda r: (r.dataset_name, BUDGET_ORDER.get(r.budget, 9)))
        rows += [Row(recipe, run) for run in mine] or [Row(recipe, None)]
    return rows


def _fmt_measured(run: MeasuredRun) -> str:
    std = MISSING if run.std is None or math.isnan(run.std) else f"{run.std:.2f}"
    text = f"{run.mean:.2f} ± {std} (n={run.n})"
    if run.final_mean is not None:
        what = run.statistic.replace("_", " ")
        text += f" {what}; final set {run.final_mean:.2f}"
    return text


def table_cells(row: Row, dataset_names: dict[str, str]) -> list[str]:
    """The cells of ``row`` under ``HEADERS``."""
    recipe, run = row.recipe, row.run
    cells = [
        recipe.name,
        run.dataset_name if run else dataset_names[recipe.dataset],
        ipc_label(recipe.ipc),
        format_published(recipe),
        format_source(recipe),
    ]
    if run is None:
        return cells + [MISSING] * 4
    return cells + [_fmt_measured(run), run.budget, run.verdict, run.run_id]


def render_table(rows: list[list[str]], headers: tuple[str, ...], fmt: str) -> str:
    """Render a table as ``"markdown"`` (GitHub pipes) or ``"latex"`` (booktabs). The one
    renderer of every leaderboard table.

    Raises:
        ValueError: unknown ``fmt``.
    """
    formats = {"markdown": "github", "latex": "latex_booktabs"}
    if fmt not in formats:
        raise ValueError(f"unknown table format {fmt!r}; known: {', '.join(formats)}")
    return tabulate(rows, headers=headers, tablefmt=formats[fmt], disable_numparse=True)


def plot_reproduced_vs_published(rows: list[Row], title: str, path: Path) -> Path | None:
    """Scatter of reproduced (y) against published (x) accuracy with error bars (±1 std), one
    panel per method, one colour per dataset, one marker per budget; ``None`` if no row has
    both numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.run is not None and r.recipe.published is not None]
    if not points:
        return None
    methods = sorted({r.recipe.method for r in points})
    datasets = sorted({r.run.dataset_name for r in points})
    colours = dict(zip(datasets, plt.cm.tab10.colors, strict=False))
    markers = {"paper": "o", "reduced": "s", "smoke": "^"}
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
                run.mean,
                xerr=pub.std or 0.0,
                yerr=0.0 if run.std is None or math.isnan(run.std) else run.std,
                fmt=markers.get(run.budget, "x"),
                color=colours[run.dataset_name],
                capsize=3,
                label=None if label in seen else label,
            )
            seen.add(label)
            ipc = "whole" if r.recipe.ipc is None else f"ipc {r.recipe.ipc}"
            ax.annotate(
                ipc, (pub.mean, run.mean), fontsize=7, xytext=(4, -8), textcoords="offset points"
            )
        ax.set_title(method)
        ax.set_xlabel("published accuracy (%)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("reproduced accuracy (%)")
    fig.suptitle(f"{title}: smoke/reduced budgets are not the paper's protocol", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def copy_pictures(tracker: Tracker, run: MeasuredRun, folder: Path, name: str) -> list[Path]:
    """Copy the PNG artifacts of the run's first synthetic set to ``folder``: its grid
    (``synthetic_grid.png``) as ``<name>.png``, any other picture a method adds (``<x>.png``, e.g.
    point-cloud renders) as ``<name>-<x>.png``; empty when the run has none (the whole-dataset
    baseline)."""
    children = sorted(tracker.children(run.run_id), key=lambda c: c.data.tags.get("set_index", ""))
    copied = []
    for child in children[:1]:
        names = sorted(a.path for a in tracker.client.list_artifacts(child.info.run_id))
        for artifact in (n for n in names if n.endswith(".png")):
            suffix = "" if artifact == GRID else "-" + artifact.removesuffix(".png")
            with tempfile.TemporaryDirectory() as tmp:
                local = tracker.download_artifact(child.info.run_id, artifact, Path(tmp))
                dst = folder / f"{name}{suffix}.png"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dst)
            copied.append(dst)
    return copied


def export_run(tracker: Tracker, run_id: str, path: Path) -> Path:
    """Write a run's record as JSON (status, start time, tags, params, latest metrics): the
    provenance of a leaderboard cell, readable without the MLflow store it came from."""
    import json

    run = tracker.get_run(run_id)
    record = {
        "run_id": run_id,
        "status": run.info.status,
        "start_time_ms": run.info.start_time,
        "tags": {k: v for k, v in sorted(run.data.tags.items()) if not k.startswith("mlflow.")},
        "params": dict(sorted(run.data.params.items())),
        "metrics": dict(sorted(run.data.metrics.items())),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def write_leaderboards(tracker: Tracker, out: Path) -> list[Path]:
    """Write every leaderboard (see module docstring) under ``out``; returns the files written."""
    import os

    from bench.data.real import load_card

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    recipes = [r for r in map(load_recipe, recipe_names()) if isinstance(r, Recipe)]
    dataset_names = {d: load_card(d).display_name for d in {r.dataset for r in recipes}}
    runs = read_runs(tracker)
    by_board: dict[str, list[Recipe]] = defaultdict(list)
    for recipe in recipes:
        by_board[recipe.leaderboard].append(recipe)
    out.mkdir(parents=True, exist_ok=True)
    written, index = [], []
    for board, members in sorted(by_board.items()):
        members.sort(key=lambda r: (r.dataset, r.ipc is None, r.ipc or 0, r.leaderboard_row))
        rows = build_rows(members, runs)
        cells = [table_cells(row, dataset_names) for row in rows]
        measured = [row for row in rows if row.run is not None]
        grids, pictured = [], set()
        for row in measured:  # one picture per recipe: its first row (the largest budget)
            if row.recipe.name not in pictured:
                pictured.add(row.recipe.name)
                pictures = copy_pictures(tracker, row.run, out / "grids", row.recipe.name)
                if pictures:
                    grids.append((row, pictures))
        plot = plot_reproduced_vs_published(rows, board, out / f"{board}.png")
        measured_recipes = len({row.recipe.name for row in measured})
        markdown = [
            f"# {board}",
            "",
            "Generated by `python -m bench leaderboard` from the MLflow store; do not edit.",
            f"Published numbers come from the recipes in `reproduce/`; reproduced ones from "
            f"finished runs ({measured_recipes} of {len(members)} recipes measured). "
            f"{MISSING} = not measured. Only runs on the paper's protocol (`paper` budget, "
            "original data) are tested against the paper; the others are labelled "
            "`not comparable`.",
            "",
            render_table(cells, HEADERS, "markdown"),
            "",
        ]
        if measured:
            markdown += ["## Runs (full records: `runs/<run id>.json`)", ""]
            for row in measured:
                record = export_run(
                    tracker, row.run.run_id, out / "runs" / f"{row.run.run_id}.json"
                )
                written.append(record)
                markdown.append(
                    f"- [`{row.run.run_id}`]({record.relative_to(out)}) {row.recipe.name} "
                    f"[{row.run.budget}]: commit {row.run.commit}, {row.run.hardware}"
                )
            markdown.append("")
        if plot:
            markdown += [f"![reproduced vs published]({plot.name})", ""]
        if grids:
            markdown += ["## Synthetic sets (first set of the run shown)", ""]
            markdown += [
                f"**{row.recipe.name}** ({row.run.budget}, run `{row.run.run_id}`)\n\n"
                + "".join(f"![{row.recipe.name}]({p.relative_to(out)})\n" for p in pictures)
                for row, pictures in grids
            ]
        (out / f"{board}.md").write_text("\n".join(markdown))
        (out / f"{board}.tex").write_text(render_table(cells, HEADERS, "latex") + "\n")
        written += [out / f"{board}.md", out / f"{board}.tex"]
        written += [p for p in [plot] if p] + [p for _, ps in grids for p in ps]
        index.append(f"| [{board}]({board}.md) | {len(members)} | {measured_recipes} |")
    (out / "README.md").write_text(
        "\n".join(
            [
                "# Leaderboards",
                "",
                "Generated by `python -m bench leaderboard [--tracking-uri URI]` from finished "
                "MLflow runs only; nothing here is written by hand, and a published number never "
                "stands where a measured one belongs (published numbers live in `reproduce/`).",
                "",
                "| leaderboard | recipes | measured recipes |",
                "|---|---|---|",
                *index,
                "",
            ]
        )
    )
    return [out / "README.md", *written]
