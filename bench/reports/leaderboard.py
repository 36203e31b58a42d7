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
method, one colour per dataset), ``grids/<recipe>.png`` (the synthetic images of a run shown,
copied on ingest; a method's other pictures add ``grids/<recipe>-<picture>.png``) and ``README.md``.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from bench.data.synthetic import GRID
from bench.evaluation.stats import (
    Verdict,
    variance_split,
    verdict,
)
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
class MeasuredRun:
    """What the leaderboard reads of one ledger record (a finished parent run)."""

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
    """milliseconds since the epoch (MLflow's), to order runs"""
    final_mean: float | None = None
    """where ``mean`` is the best evaluation during distillation (recipes whose published
    number is that statistic) or on a stream of batches drawn from the set: the final
    synthetic set's mean accuracy, shown beside it"""
    recipe_version: str = ""
    dataset: str = ""
    overrides: str = ""
    comparable: bool = False
    sets: tuple[tuple[float, ...], ...] | None = None
    """accuracies of the tested statistic per synthetic set; ``None`` in records logged before
    the set-level verdict (they cannot be pooled)"""
    final_sets: tuple[tuple[float, ...], ...] | None = None
    pictures: tuple[str, ...] = ()
    """pictures of this run under the leaderboard folder (``grids/...``)"""
    statistic: str = "final"
    """what ``mean`` is (``bench.spec.recipes.STATISTICS``)"""
    submitted: str = ""
    """for a set made elsewhere and judged with ``python -m bench evaluate`` (tag
    ``source=external``): who made it and the first file's SHA-256 prefix; its row stands beside
    the suite's own reproduction of the recipe and is never pooled with it"""

    @classmethod
    def from_record(cls, record: dict) -> MeasuredRun | None:
        """Read a ledger record; ``None`` for a run that is not a reproduction parent run."""
        tags, metrics = record["tags"], record["metrics"]
        model = (tags.get("eval_models") or "ConvNet").split()[0]
        if f"eval/{model}/acc" not in metrics:
            return None
        key, final = f"eval/{model}/acc", None
        statistic = "final"
        for other in ("max_over_evaluations", "stream"):  # bench.spec.recipes.STATISTICS
            if f"eval/{model}/{other}_acc" in metrics:
                key, final, statistic = f"eval/{model}/{other}_acc", metrics[key], other

        def nested(values):
            return None if values is None else tuple(tuple(map(float, s)) for s in values)

        return cls(
            run_id=record["run_id"],
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
            start_time=int(record.get("start_time_ms", 0)),
            final_mean=final,
            recipe_version=tags.get("recipe_version", ""),
            dataset=tags.get("dataset", ""),
            overrides=tags.get("overrides", ""),
            comparable=tags.get("comparable") == "true",
            sets=nested(record.get("sets")),
            final_sets=nested(record.get("final_sets")),
            pictures=tuple(record.get("pictures", ())),
            statistic=statistic,
            submitted=(
                f"{tags.get('submitted_by') or 'unnamed'}, {tags.get('file.0.sha256', '')[:12]}"
                if tags.get("source") == "external"
                else ""
            ),
        )

    @property
    def cell(self) -> tuple[str, ...]:
        """Runs with the same cell are pooled: recipe, version, data copy, budget, overrides;
        each submitted set is a cell of its own."""
        return (
            self.recipe,
            self.recipe_version,
            self.dataset_name,
            self.budget,
            self.overrides,
            self.submitted and self.run_id,
        )


@dataclass(frozen=True)
class Row:
    """One table row: a recipe and the runs of one of its cells (empty: not measured).

    ``pooled`` is the verdict recomputed on the pooled synthetic sets, ``None`` where the runs
    carry no per-set accuracies (then ``runs`` is the newest record alone)."""

    recipe: Recipe
    runs: tuple[MeasuredRun, ...] = ()
    pooled: Verdict | None = None

    @property
    def run(self) -> MeasuredRun | None:
        """The newest run of the cell."""
        return self.runs[-1] if self.runs else None

    @property
    def mean(self) -> float:
        return self.pooled.mean if self.pooled else self.run.mean

    @property
    def std(self) -> float | None:
        return self.pooled.std if self.pooled else self.run.std


def read_ledger(folder: Path) -> list[MeasuredRun]:
    """Every reproduction record in ``folder`` (``<run id>.json``), oldest first."""
    runs = []
    for path in sorted(folder.glob("*.json")):
        run = MeasuredRun.from_record(json.loads(path.read_text()))
        if run is not None:
            runs.append(run)
    return sorted(runs, key=lambda r: (r.start_time, r.run_id))


def ingest(tracker: Tracker, ledger: Path) -> list[Path]:
    """Add every finished reproduction (parent) run of the store to the ledger (one record
    each, replacing an older record of the same run); returns the records written."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=50000,
    )
    written = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        model = (tags.get("eval_models") or "ConvNet").split()[0]
        if "mlflow.parentRunId" in tags or f"eval/{model}/acc" not in metrics:
            continue
        written.append(export_run(tracker, run.info.run_id, ledger / f"{run.info.run_id}.json"))
    return written


def _pool(recipe: Recipe, runs: list[MeasuredRun]) -> Verdict:
    """The verdict on the synthetic sets of ``runs`` (one cell) pooled."""
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
    sets = [s for r in runs for s in r.sets]
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
            if poolable:
                mine.append(Row(recipe, tuple(poolable), _pool(recipe, poolable)))
            else:
                mine.append(Row(recipe, (members[-1],)))
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
    n = row.pooled.n if row.pooled else row.run.n
    text = f"{row.mean:.2f} ± {std} (n={n})"
    finals = [a for r in row.runs for s in (r.final_sets or ()) for a in s]
    final = (sum(finals) / len(finals)) if row.pooled and finals else row.run.final_mean
    if row.run.final_mean is not None:
        text += f" {row.run.statistic.replace('_', ' ')}; final set {final:.2f}"
    return text


def _fmt_spread(row: Row) -> str:
    if row.pooled is None:
        return "n/a (record without per-set accuracies)"
    split = variance_split(row.pooled.sets)

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
    outcome = row.pooled.verdict if row.pooled else run.verdict
    return cells + [
        _fmt_measured(row),
        _fmt_spread(row),
        run.budget,
        outcome,
        ", ".join(r.run_id for r in row.runs),
    ]


def table_claim(rows: list[Row], alpha: float = 0.05) -> str:
    """The table-level claim: of the cells tested against the paper, how many are reproduced
    and how many not after a Holm-Bonferroni correction across them (``statsmodels``
    ``multipletests(method="holm")`` on the equivalence, then on the difference p-values)."""
    tested = [r.pooled for r in rows if r.pooled and r.pooled.comparable and not r.run.submitted]
    tested = [v for v in tested if not math.isnan(v.p_equivalence)]
    if not tested:
        return (
            "Table-level claim: no cell is tested against the paper yet (only `paper`-budget "
            "runs on the original data with a measurable spread are)."
        )
    reproduced, different = holm(
        [v.p_equivalence for v in tested], [v.p_difference for v in tested], alpha
    )
    return (
        f"Table-level claim: {sum(reproduced)} of {len(tested)} comparable cell(s) reproduced, "
        f"{sum(different)} not reproduced (Holm-Bonferroni across the {len(tested)} cells at "
        f"alpha {alpha}; each row's verdict is uncorrected)."
    )


def holm(p_equivalence: list[float], p_difference: list[float], alpha: float):
    """Per cell: reproduced (equivalence rejected under Holm across the cells) and not
    reproduced (difference rejected under Holm, and not reproduced)."""
    from statsmodels.stats.multitest import multipletests

    equivalent = multipletests(p_equivalence, alpha=alpha, method="holm")[0]
    differs = multipletests(p_difference, alpha=alpha, method="holm")[0]
    return [bool(e) for e in equivalent], [
        bool(d and not e) for d, e in zip(differs, equivalent, strict=True)
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
                r.mean,
                xerr=pub.std or 0.0,
                yerr=0.0 if r.std is None or math.isnan(r.std) else r.std,
                fmt=markers.get(run.budget, "x"),
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
    fig.suptitle(f"{title}: smoke/reduced budgets are not the paper's protocol", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
                shutil.copyfile(local, dst)
            copied.append(dst)
    return copied


def export_run(tracker: Tracker, run_id: str, path: Path) -> Path:
    """Write a run's ledger record as JSON (status, start time, tags, params, latest metrics,
    and from its ``verdict.json`` the accuracies per synthetic set: ``sets`` of the tested
    statistic, ``final_sets`` of the final set): the provenance of a leaderboard cell, readable
    and poolable without the MLflow store it came from. Keeps the ``pictures`` of an older
    record of the same run."""
    run = tracker.get_run(run_id)
    record = {
        "run_id": run_id,
        "status": run.info.status,
        "start_time_ms": run.info.start_time,
        "tags": {k: v for k, v in sorted(run.data.tags.items()) if not k.startswith("mlflow.")},
        "params": dict(sorted(run.data.params.items())),
        "metrics": dict(sorted(run.data.metrics.items())),
    }
    with tempfile.TemporaryDirectory() as tmp:
        try:
            judged = json.loads(
                tracker.download_artifact(run_id, "verdict.json", Path(tmp)).read_text()
            )
        except Exception:  # a run logged before verdict.json held its sets, or none at all
            judged = {}
    if judged.get("sets") and judged.get("final_accuracies_by_set"):
        record["statistic"] = judged.get("statistic", "final")
        record["sets"] = judged["sets"]
        record["final_sets"] = judged["final_accuracies_by_set"]
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("pictures"):
            record["pictures"] = old["pictures"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def write_leaderboards(tracker: Tracker | None, out: Path) -> list[Path]:
    """Write every leaderboard (see module docstring) under ``out`` from the ledger
    ``out/runs``; with a ``tracker``, first ingest its finished runs into the ledger and copy
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
                    _note_pictures(ledger / f"{fresh[0].run_id}.json", pictures, out)
                    grids.append((row.recipe.name, fresh[0], pictures))
                    written += pictures
                    continue
            shown = [r for r in reversed(row.runs) if r.pictures]
            if not shown:  # pictures of a run of another cell of the recipe (e.g. older)
                shown = [r for r in reversed(runs) if r.recipe == row.recipe.name and r.pictures]
            if shown:
                grids.append((row.recipe.name, shown[0], [out / p for p in shown[0].pictures]))
        plot = plot_reproduced_vs_published(rows, board, out / f"{board}.png")
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
                        f"[{run.budget}]: commit {run.commit}, {run.hardware}{pooled}"
                    )
            markdown.append("")
        if plot:
            markdown += [f"![reproduced vs published]({plot.name})", ""]
        if grids:
            markdown += ["## Synthetic sets (first set of the run named)", ""]
            markdown += [
                f"**{name}** ({run.budget}, run `{run.run_id}`)\n\n"
                + "".join(f"![{name}]({p.relative_to(out)})\n" for p in pictures)
                for name, run, pictures in grids
            ]
        (out / f"{board}.md").write_text("\n".join(markdown))
        (out / f"{board}.tex").write_text(render_table(cells, HEADERS, "latex") + "\n")
        written += [out / f"{board}.md", out / f"{board}.tex"]
        written += [p for p in [plot] if p]
        index.append(f"| [{board}]({board}.md) | {len(members)} | {measured_recipes} |")
    (out / "README.md").write_text(
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
        )
    )
    return [out / "README.md", *written]


def _note_pictures(record: Path, pictures: list[Path], out: Path) -> None:
    """Name the pictures copied from a run in its ledger record."""
    data = json.loads(record.read_text())
    data["pictures"] = [str(p.relative_to(out)) for p in pictures]
    record.write_text(json.dumps(data, indent=2) + "\n")
