"""Leaderboards built from a durable ledger of run records (``python -m bench leaderboard``).

The ledger is ``leaderboards/runs/<run id>.json``: one committed record per finished parent run
(tags with commit, hardware and versions; params; metrics; and, since the set-level verdict,
``sets``, the accuracies of the recipe's model per synthetic set and network, of the statistic
the published number measures, with ``final_sets`` beside them). Tables are built from the
ledger alone, so a fresh clone rebuilds the committed tables exactly; ``--ingest`` first adds
the finished runs of an MLflow store to the ledger (and copies their pictures).

Every recipe is one row per cell of its leaderboard table (``leaderboard`` key of the recipe,
e.g. ``dc-table1``). A cell pools every comparable run of its recipe (same recipe version,
budget, data copy and ``--set`` overrides) across seeds and machines: their synthetic sets are
joined and the verdict is recomputed on them (``bench.evaluation.stats.verdict``). A record
without per-set accuracies (logged before the set-level verdict) cannot be pooled: its cell
shows its logged summary and verdict, newest record first. A recipe with no run shows "—"
where a measured number would stand, never the published one. Each table ends with a
table-level claim: how many of its comparable cells are reproduced / not reproduced after a
Holm-Bonferroni correction across them.

Outputs, per leaderboard ``<name>``: ``<name>.md`` and ``<name>.tex`` (the same table through
one renderer), ``<name>.png`` (reproduced against published, with error bars, one panel per
method, one colour per dataset), ``<name>-cells.png`` (the rows of each cell side by side, where
a cell has two measured methods; ``bench.reports.plots``), ``grids/<recipe>.png`` (the synthetic
images of a run shown, copied on ingest; a method's other pictures add
``grids/<recipe>-<picture>.png``) and ``README.md``.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench.core.hashing import write_atomic
from bench.data.synthetic import GRID
from bench.evaluation.stats import (
    Verdict,
    variance_split,
    verdict,
)
from bench.reports.fidelity import write_table
from bench.reports.ledger import (
    Design,
    MeasuredRun,
    ingest,
    note_pictures,
    pool_designs,
    read_ledger,
)
from bench.reports.plots import plot_cells, plot_reproduced_vs_published
from bench.run.options import format_sets
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
    "spread between sets / within a set (ICC)",
    "budget",
    "verdict",
    "runs",
)


@dataclass(frozen=True)
class Row:
    """One table row: a recipe and the runs of one of its cells (empty: not measured).

    ``designs`` are the cell's designs (``bench.reports.ledger.pool_designs``); ``pooled`` is
    the verdict recomputed on the sets of its complete designs, ``None`` while none is complete
    or where the runs carry no per-set accuracies (then ``runs`` is the newest record alone)."""

    recipe: Recipe
    runs: tuple[MeasuredRun, ...] = ()
    pooled: Verdict | None = None
    designs: tuple[Design, ...] = ()

    @property
    def run(self) -> MeasuredRun | None:
        """The newest run of the cell."""
        return self.runs[-1] if self.runs else None

    @property
    def in_progress(self) -> list[Design]:
        return [d for d in self.designs if not d.complete]

    @property
    def shown_sets(self) -> list[tuple[float, ...]]:
        """The sets behind the shown numbers: the complete designs' or, while none is
        complete, every set measured so far."""
        if self.pooled:
            return list(self.pooled.sets)
        return [s for d in self.designs for s in d.sets.values()]

    @property
    def mean(self) -> float:
        if self.pooled or not self.designs:
            return self.pooled.mean if self.pooled else self.run.mean
        return float(np.mean([a for s in self.shown_sets for a in s]))

    @property
    def std(self) -> float | None:
        if self.pooled or not self.designs:
            return self.pooled.std if self.pooled else self.run.std
        flat = [a for s in self.shown_sets for a in s]
        return float(np.std(flat, ddof=1)) if len(flat) > 1 else None


def _pool(recipe: Recipe, runs: list[MeasuredRun], sets: list[tuple[float, ...]]) -> Verdict:
    """The verdict on ``sets``, the synthetic sets of the complete designs of ``runs`` (one
    cell)."""
    first = runs[0]
    reasons = []
    if not all(r.comparable and r.budget == "paper" for r in runs):
        if first.budget != "paper":
            reasons.append(f"budget={first.budget}")
        if first.overrides:
            reasons.append("overrides: " + ", ".join(first.overrides.split()))
        if first.dataset and first.dataset != recipe.dataset:
            reasons.append(f"data: {first.dataset}, not the original {recipe.dataset}")
        reasons = reasons or ["a run off the paper's protocol"]
    if first.recipe_version and first.recipe_version != str(recipe.version):
        reasons.append(f"recipe v{first.recipe_version}, superseded by v{recipe.version}")
    return verdict(sets, recipe.published, recipe.margin, recipe.alpha, reasons, recipe.statistic)


def build_rows(recipes: list[Recipe], runs: list[MeasuredRun]) -> list[Row]:
    """One row per recipe and cell (see module docstring), budgets in the order paper,
    reduced, smoke; one "—" row per recipe without runs."""
    cells: dict[tuple, list[MeasuredRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.start_time, r.run_id)):
        cells[run.cell].append(run)
    rows = []
    for recipe in recipes:
        mine = []
        for key, members in cells.items():
            if key[0] != recipe.name:
                continue
            poolable = [r for r in members if r.sets]
            if not poolable:
                mine.append(Row(recipe, (members[-1],)))
                continue
            designs = tuple(pool_designs(poolable))
            sets = [s for d in designs if d.complete for s in d.sets.values()]
            pooled = _pool(recipe, poolable, sets) if sets else None
            mine.append(Row(recipe, tuple(poolable), pooled, designs))
        mine.sort(
            key=lambda r: (
                bool(r.run.submitted),  # the suite's own rows first, submitted sets beside them
                r.run.recipe_version != str(recipe.version),  # the current protocol first
                r.run.dataset_name,
                BUDGET_ORDER.get(r.run.budget, 9),
                r.run.cell,
            )
        )
        rows += mine or [Row(recipe)]
    return rows


def _fmt_measured(row: Row) -> str:
    std = MISSING if row.std is None or math.isnan(row.std) else f"{row.std:.2f}"
    n = sum(len(s) for s in row.shown_sets) if row.designs else row.run.n
    text = f"{row.mean:.2f} ± {std} (n={n})"
    finals = [
        a
        for d in row.designs
        if d.complete or not row.pooled
        for s in d.final_sets.values()
        for a in s
    ]
    final = (sum(finals) / len(finals)) if finals else row.run.final_mean
    if row.run.final_mean is not None:
        text += f" {row.run.statistic.replace('_', ' ')}; final set {final:.2f}"
    return text + ("" if row.pooled or not row.designs else " so far")


def _fmt_verdict(row: Row) -> str:
    """The pooled verdict, or the progress of an incomplete design; then what else the cell
    holds: designs still in progress beside a judged one, conflicting duplicate sets."""
    if not row.designs:
        return row.run.verdict
    budget = row.run.budget
    parts = [row.pooled.verdict] if row.pooled else []
    progress = [d.progress(budget) for d in row.in_progress if d.sets]
    if progress:
        lead = "also in progress" if row.pooled else "in progress"
        parts.append(f"{lead}: {'; '.join(progress)}; judged when complete")
    for design in row.designs:
        for index, runs in design.conflicts.items():
            parts.append(
                f"conflict: set {index} (seed {design.key[1]}) measured with different files "
                f"by {', '.join(runs)}; not pooled until one record is removed"
            )
    return "; ".join(parts) or "no set measured"


def _fmt_shard(run: MeasuredRun) -> str:
    """`` sets 0-1 of 5 (seed 0; files: runs/<id>/set0.safetensors, ...)`` for a shard or a run
    whose set files are committed; empty for an uncommitted full run."""
    # the tables live in leaderboards/, the files in leaderboards/runs/
    indices = tuple(s.index for s in run.set_records)
    files = [f"[set{s.index}](runs/{s.file})" for s in run.set_records if s.file]
    if len(indices) == run.design_sets and not files:
        return ""
    text = f" sets {format_sets(indices)} of {run.design_sets} (seed {run.design[1]}"
    return text + (f"; files {', '.join(files)})" if files else ")")


def _fmt_spread(row: Row) -> str:
    if not row.designs:
        return "n/a (record without per-set accuracies)"
    split = variance_split(row.shown_sets)

    def fmt(x: float) -> str:
        return MISSING if math.isnan(x) else f"{x:.2f}"

    return (
        f"{fmt(split.std_between)} / {fmt(split.std_within)} (ICC {fmt(split.icc)}; "
        f"{split.sets} set(s))"
    )


def table_cells(row: Row, dataset_names: dict[str, str]) -> list[str]:
    """The cells of ``row`` under ``HEADERS``."""
    recipe, run = row.recipe, row.run
    name = recipe.name
    if run is not None and run.submitted:
        name += f" (submitted: {run.submitted})"
    if run is not None and run.recipe_version and run.recipe_version != str(recipe.version):
        # an older protocol of this recipe: shown, never mixed with the current version's runs
        name += f" (v{run.recipe_version}, superseded by v{recipe.version})"
    cells = [
        name,
        run.dataset_name if run else dataset_names[recipe.dataset],
        ipc_label(recipe.ipc),
        format_published(recipe),
        format_source(recipe),
    ]
    if run is None:
        return cells + [MISSING] * 5
    return cells + [
        _fmt_measured(row),
        _fmt_spread(row),
        run.budget,
        _fmt_verdict(row),
        ", ".join(r.run_id for r in row.runs),
    ]


def table_claim(rows: list[Row], alpha: float = 0.05) -> str:
    """The table-level claim: of the cells tested against the paper, how many are reproduced
    and how many not after a Holm-Bonferroni correction across them (``statsmodels``
    ``multipletests(method="holm")`` on the equivalence, then on the minimal-effect
    p-values: the two tests the verdict's ``reproduced`` and ``not reproduced`` rest on)."""
    tested = [r.pooled for r in rows if r.pooled and r.pooled.comparable and not r.run.submitted]
    tested = [v for v in tested if not math.isnan(v.p_equivalence)]
    if not tested:
        return (
            "Table-level claim: no cell is tested against the paper yet (only `paper`-budget "
            "runs on the original data with a measurable spread are)."
        )
    reproduced, different = holm(
        [v.p_equivalence for v in tested], [v.p_minimal_effect for v in tested], alpha
    )
    return (
        f"Table-level claim: {sum(reproduced)} of {len(tested)} comparable cell(s) reproduced, "
        f"{sum(different)} not reproduced (Holm-Bonferroni across the {len(tested)} cells at "
        f"alpha {alpha}; each row's verdict is uncorrected)."
    )


def holm(p_equivalence: list[float], p_beyond: list[float], alpha: float):
    """Per cell: reproduced (equivalence rejected under Holm across the cells) and not
    reproduced (the minimal-effect test, ``|d| <= margin``, rejected under Holm; the two cannot
    both reject at one alpha, ``and not e`` only guards the count)."""
    from statsmodels.stats.multitest import multipletests

    equivalent = multipletests(p_equivalence, alpha=alpha, method="holm")[0]
    beyond = multipletests(p_beyond, alpha=alpha, method="holm")[0]
    return [bool(e) for e in equivalent], [
        bool(d and not e) for d, e in zip(beyond, equivalent, strict=True)
    ]


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


def copy_pictures(tracker: Tracker, run: MeasuredRun, folder: Path, name: str) -> list[Path]:
    """Copy the PNG artifacts of the run's first synthetic set to ``folder``: its grid
    (``synthetic_grid.png``) as ``<name>.png``, any other picture a method adds (``<x>.png``, e.g.
    renders of a method) as ``<name>-<x>.png``; empty when the run has none (the whole-dataset
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
                write_atomic(dst, local.read_bytes())
            copied.append(dst)
    return copied


def write_leaderboards(tracker: Tracker | None, out: Path) -> list[Path]:
    """Write every leaderboard (see module docstring) under ``out`` from the ledger
    ``out/runs``, and ``out/fidelity.md`` from the check records in ``out/fidelity``; with a
    ``tracker``, first ingest its finished runs into the ledger and copy
    the pictures of the runs shown. Returns the files written."""
    import os

    from bench.data.real import load_card

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    recipes = [r for r in map(load_recipe, recipe_names()) if isinstance(r, Recipe)]
    dataset_names = {d: load_card(d).display_name for d in {r.dataset for r in recipes}}
    ledger = out / "runs"
    written: list[Path] = []
    ingested: set[str] = set()
    if tracker is not None:
        records = ingest(tracker, ledger)
        written += records
        ingested = {p.stem for p in records}
    runs = read_ledger(ledger)
    by_board: dict[str, list[Recipe]] = defaultdict(list)
    for recipe in recipes:
        by_board[recipe.leaderboard].append(recipe)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for board, members in sorted(by_board.items()):
        members.sort(key=lambda r: (r.dataset, r.ipc is None, r.ipc or 0, r.leaderboard_row))
        rows = build_rows(members, runs)
        cells = [table_cells(row, dataset_names) for row in rows]
        measured = [row for row in rows if row.run is not None]
        grids, pictured = [], set()
        for row in measured:  # one picture per recipe: its first row (the largest budget)
            if row.recipe.name in pictured:
                continue
            pictured.add(row.recipe.name)
            fresh = [r for r in reversed(row.runs) if r.run_id in ingested]
            if fresh:
                pictures = copy_pictures(tracker, fresh[0], out / "grids", row.recipe.name)
                if pictures:
                    note_pictures(ledger / f"{fresh[0].run_id}.json", pictures, out)
                    grids.append((row.recipe.name, fresh[0], pictures))
                    written += pictures
                    continue
            shown = [r for r in reversed(row.runs) if r.pictures]
            if not shown:  # pictures of a run of another cell of the recipe (e.g. older)
                shown = [r for r in reversed(runs) if r.recipe == row.recipe.name and r.pictures]
            if shown:
                grids.append((row.recipe.name, shown[0], [out / p for p in shown[0].pictures]))
        plots = [
            plot_reproduced_vs_published(rows, board, out / f"{board}.png"),
            plot_cells(rows, board, out / f"{board}-cells.png", dataset_names),
        ]
        measured_recipes = len({row.recipe.name for row in measured})
        alpha = min(r.alpha for r in members)
        markdown = [
            f"# {board}",
            "",
            "Generated by `python -m bench leaderboard` from the run records in `runs/`; do not "
            "edit.",
            f"Published numbers come from the recipes in `reproduce/`; reproduced ones from "
            f"finished runs ({measured_recipes} of {len(members)} recipes measured), every "
            f"comparable run of a cell pooled. {MISSING} = not measured. Only runs on the "
            "paper's protocol (`paper` budget, original data) are tested against the paper, "
            "with the synthetic set as the unit (README, Verdict); the others are labelled "
            "`not comparable`.",
            "",
            table_claim(rows, alpha),
            "",
            render_table(cells, HEADERS, "markdown"),
            "",
        ]
        if measured:
            markdown += ["## Runs (full records: `runs/<run id>.json`)", ""]
            for row in measured:
                for run in row.runs:
                    pooled = "" if run.sets else "; no per-set accuracies: not pooled"
                    markdown.append(
                        f"- [`{run.run_id}`](runs/{run.run_id}.json) {row.recipe.name} "
                        f"[{run.budget}]{_fmt_shard(run)}: commit {run.commit}, "
                        f"{run.hardware}{pooled}"
                    )
            markdown.append("")
        for plot, alt in zip(plots, ("reproduced vs published", "per cell"), strict=True):
            if plot:
                markdown += [f"![{alt}]({plot.name})", ""]
        if grids:
            markdown += ["## Synthetic sets (first set of the run named)", ""]
            markdown += [
                f"**{name}** ({run.budget}, run `{run.run_id}`)\n\n"
                + "".join(f"![{name}]({p.relative_to(out)})\n" for p in pictures)
                for name, run, pictures in grids
            ]
        write_atomic(out / f"{board}.md", "\n".join(markdown))
        write_atomic(out / f"{board}.tex", render_table(cells, HEADERS, "latex") + "\n")
        written += [out / f"{board}.md", out / f"{board}.tex"]
        written += [p for p in plots if p]
        index.append(f"| [{board}]({board}.md) | {len(members)} | {measured_recipes} |")
    write_atomic(
        out / "README.md",
        "\n".join(
            [
                "# Leaderboards",
                "",
                "Generated by `python -m bench leaderboard` from the run records in `runs/` (the "
                "ledger; `--ingest` adds an MLflow store's finished runs to it); nothing here is "
                "written by hand, and a published number never stands where a measured one "
                "belongs (published numbers live in `reproduce/`).",
                "",
                "| leaderboard | recipes | measured recipes |",
                "|---|---|---|",
                *index,
                "",
            ]
        ),
    )
    if (out / "fidelity").is_dir():  # the differential checks' records (bench.reports.fidelity)
        written.append(write_table(out / "fidelity"))
    return [out / "README.md", *written]
