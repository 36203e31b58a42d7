"""Leaderboards are built from the committed ledger of run records (plus an ingested MLflow
store), never from published numbers."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from bench.core.paths import LEADERBOARDS_DIR
from bench.reports.leaderboard import (
    HEADERS,
    MISSING,
    Row,
    holm,
    render_table,
    write_leaderboards,
)
from bench.reports.plots import cell_panels, short_name
from bench.run.tracking import Tracker
from bench.spec.recipes import load_recipe


def log_reproduction(tracker, recipe, acc, std, n, budget="smoke", status="FINISHED", **tags):
    """A parent run with the tags and metrics the runner wrote before per-set records."""
    run_id = tracker.start_run(
        recipe,
        {
            "recipe": recipe,
            "budget": budget,
            "dataset_name": tags.pop("dataset_name", "MNIST"),
            "eval_models": "ConvNet",
            "verdict": f"not comparable (budget={budget})",
            "git_commit": "abc123",
            "hardware": "cpu: 2 threads, test",
            **tags,
        },
    )
    tracker.log_metrics(run_id, {"eval/ConvNet/acc": acc, "eval/ConvNet/acc_std": std})
    tracker.log_metrics(run_id, {"eval/ConvNet/n": n})
    tracker.set_status(run_id, status)
    return run_id


@pytest.fixture
def store(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    ids = {
        "old": log_reproduction(tracker, "gm-mnist-ipc1", 50.0, 1.0, 3),
        "new": log_reproduction(tracker, "gm-mnist-ipc1", 86.79, 0.68, 3),
        "reduced": log_reproduction(tracker, "gm-mnist-ipc1", 91.36, 0.34, 10, budget="reduced"),
        "jpeg": log_reproduction(
            tracker, "gm-cifar10-ipc1", 25.5, 0.5, 3, dataset_name="CIFAR-10 (JPEG copy)"
        ),
        "failed": log_reproduction(tracker, "gm-svhn-ipc1", 31.2, 1.4, 3, status="FAILED"),
        "random": log_reproduction(tracker, "random-mnist-ipc1", 58.4, 1.8, 3),
    }
    return tracker, ids


def table_rows(markdown: str) -> dict[str, list[list[str]]]:
    rows: dict[str, list[list[str]]] = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| recipe"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], []).append(cells)
    return rows


def test_table_shows_measured_runs_and_dashes_never_published_numbers(store, tmp_path):
    tracker, ids = store
    out = tmp_path / "boards"
    written = write_leaderboards(tracker, out)
    assert out / "dc-table1.md" in written and (out / "dc-table1.tex").is_file()
    rows = table_rows((out / "dc-table1.md").read_text())
    assert len(rows) == 64  # every recipe of dc-table1 (random, herding, DC, DSA, DM, whole)

    gm = {r[HEADERS.index("budget")]: r for r in rows["gm-mnist-ipc1"]}
    assert list(gm) == ["reduced", "smoke"]  # larger budget first; newest smoke run only
    assert gm["smoke"][HEADERS.index("reproduced (%)")] == "86.79 ± 0.68 (n=3)"
    assert gm["smoke"][HEADERS.index("runs")] == ids["new"]
    assert gm["reduced"][HEADERS.index("published (%)")].startswith("91.7 ± 0.5")
    (jpeg,) = rows["gm-cifar10-ipc1"]
    assert jpeg[HEADERS.index("dataset")] == "CIFAR-10 (JPEG copy)"

    # the FAILED run and all unmeasured recipes: dashes in every measured column
    for name in ("gm-svhn-ipc1", "herding-mnist-ipc1", "whole-cifar10"):
        (row,) = rows[name]
        assert row[HEADERS.index("reproduced (%)") :] == [MISSING] * 5
    # no reproduced cell holds the recipe's published number
    for name, recipe_rows in rows.items():
        published = load_recipe(name).published
        for row in recipe_rows:
            if published is not None:
                assert not row[HEADERS.index("reproduced (%)")].startswith(f"{published.mean:.2f}")
    assert ids["failed"] not in (out / "dc-table1.md").read_text()
    assert (out / "dc-table1.png").is_file()
    # MNIST ipc 1 has two measured methods (DC, random): its cell is pictured side by side
    assert (out / "dc-table1-cells.png").is_file()
    assert "![per cell](dc-table1-cells.png)" in (out / "dc-table1.md").read_text()
    record = json.loads((out / "runs" / f"{ids['new']}.json").read_text())
    assert record["tags"]["git_commit"] == "abc123" and record["metrics"]["eval/ConvNet/n"] == 3
    # ingest puts every finished run in the ledger; the older one is not pooled (no sets)
    assert (out / "runs" / f"{ids['old']}.json").exists()
    assert not (out / "runs" / f"{ids['failed']}.json").exists()


def test_cell_panels_put_a_cells_recipes_side_by_side_with_the_whole_dataset():
    run = SimpleNamespace(budget="smoke", dataset_name="MNIST")
    measured = ["gm-mnist-ipc1", "random-mnist-ipc1", "whole-mnist", "gm-mnist-ipc10"]
    rows = [Row(load_recipe(name), (run,)) for name in [*measured, "dm-cifar10-ipc1"]]
    rows += [Row(load_recipe("herding-mnist-ipc1")), Row(load_recipe("gm-cifar10-ipc1"))]
    panels = cell_panels(rows)
    # CIFAR-10 ipc 1 has one measured method (DM): no panel; whole-mnist joins both MNIST cells
    assert list(panels) == [("mnist", 1), ("mnist", 10)]
    assert [r.recipe.name for r in panels[("mnist", 1)]] == [
        "gm-mnist-ipc1",
        "random-mnist-ipc1",
        "herding-mnist-ipc1",
        "whole-mnist",
    ]
    assert [r.recipe.name for r in panels[("mnist", 10)]] == ["gm-mnist-ipc10", "whole-mnist"]
    assert [short_name(Row(load_recipe(n))) for n in ("gtn-gm-mnist-fixed", "whole-mnist")] == [
        "gtn-gm-fixed",
        "whole",
    ]


def test_one_renderer_gives_markdown_and_latex():
    cells = [["gm-mnist-ipc1", "86.79 ± 0.68 (n=3)"]]
    markdown = render_table(cells, ("recipe", "reproduced"), "markdown")
    latex = render_table(cells, ("recipe", "reproduced"), "latex")
    assert markdown.splitlines()[0].startswith("| recipe") and "86.79 ± 0.68" in markdown
    assert "\\toprule" in latex and "gm-mnist-ipc1" in latex
    with pytest.raises(ValueError, match="unknown table format"):
        render_table(cells, ("recipe", "reproduced"), "html")


def log_sets(tracker, tmp_path, recipe, sets, seed, budget="paper", comparable=True):
    """A parent run as the runner writes it now: metrics, tags and verdict.json with sets."""
    flat = [a for values in sets for a in values]
    run_id = tracker.start_run(
        recipe,
        {
            "recipe": recipe,
            "recipe_version": str(load_recipe(recipe).version),
            "budget": budget,
            "seed": str(seed),
            "dataset": "mnist",
            "dataset_name": "MNIST",
            "overrides": "",
            "eval_models": "ConvNet",
            "comparable": str(comparable).lower(),
            "verdict": "whatever the run said",
            "git_commit": "abc123",
            "hardware": "cpu: test",
        },
    )
    metrics = {"eval/ConvNet/acc": float(np.mean(flat)), "eval/ConvNet/n": len(flat)}
    tracker.log_metrics(run_id, metrics)
    path = tmp_path / f"verdict-{run_id}" / "verdict.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"sets": sets, "final_accuracies_by_set": sets}))
    tracker.log_artifact(run_id, path)
    tracker.set_status(run_id, "FINISHED")
    return run_id


def test_comparable_runs_of_a_cell_are_pooled_across_seeds(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    rng = np.random.default_rng(0)
    sets = (91.7 + rng.normal(0, 0.2, (6, 1)) + rng.normal(0, 0.4, (6, 20))).round(2).tolist()
    first = log_sets(tracker, tmp_path, "gm-mnist-ipc1", sets[:3], seed=0)
    second = log_sets(tracker, tmp_path, "gm-mnist-ipc1", sets[3:], seed=1)
    out = tmp_path / "boards"
    write_leaderboards(tracker, out)
    (row,) = table_rows((out / "dc-table1.md").read_text())["gm-mnist-ipc1"]
    assert row[HEADERS.index("runs")] == f"{first}, {second}"
    assert row[HEADERS.index("reproduced (%)")].endswith("(n=120)")
    assert "6 set(s)" in row[HEADERS.index("spread between sets / within a set (ICC)")]
    assert row[HEADERS.index("verdict")] == "reproduced"  # recomputed, not the logged tag
    assert "1 of 1 comparable cell(s) reproduced" in (out / "dc-table1.md").read_text()
    record = json.loads((out / "runs" / f"{first}.json").read_text())
    assert record["sets"] == sets[:3]


def test_holm_on_a_hand_computed_table():
    # equivalence p sorted 0.01, 0.03, 0.04 against 0.05/3, 0.05/2, 0.05/1: the first passes
    # (0.01 < 0.0167), the second fails (0.03 > 0.025) and Holm stops there.
    reproduced, different = holm([0.04, 0.01, 0.03], [0.9, 0.001, 0.02], alpha=0.05)
    assert reproduced == [False, True, False]
    # difference p sorted 0.001, 0.02, 0.9: 0.001 < 0.0167 and 0.02 < 0.025 reject; cell 1 is
    # already reproduced, so only cell 2 reads "not reproduced"
    assert different == [False, False, True]


def test_a_fresh_clone_rebuilds_the_committed_tables_exactly(tmp_path):
    out = tmp_path / "leaderboards"
    shutil.copytree(LEADERBOARDS_DIR, out)
    write_leaderboards(None, out)  # the ledger only, as on a fresh clone without a store
    for name in ("README.md", "dc-table1.md", "dc-table1.tex", "mtt.md", "gtn.md"):
        assert (out / name).read_text() == (LEADERBOARDS_DIR / name).read_text(), name
    for name in ("pc-gm-report.md", "pc-gm-report.tex", "mtt.tex", "gtn.tex"):
        assert (out / name).read_text() == (LEADERBOARDS_DIR / name).read_text(), name


def test_ingesting_a_new_run_changes_only_its_cell(tmp_path):
    out = tmp_path / "leaderboards"
    shutil.copytree(LEADERBOARDS_DIR, out)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    new = log_sets(
        tracker, tmp_path, "gm-svhn-ipc1", [[30.0, 31.0], [32.0, 30.5]], 0, "smoke", False
    )
    write_leaderboards(tracker, out)
    before = (LEADERBOARDS_DIR / "dc-table1.md").read_text().splitlines()
    after = (out / "dc-table1.md").read_text().splitlines()
    changed = [line for line in after if line not in before]
    table = [line for line in changed if line.startswith("| ")]
    assert len(table) == 1 and table[0].startswith("| gm-svhn-ipc1 ") and new in table[0]
    assert all(new in line or "recipes measured" in line for line in changed), changed


def test_a_submitted_set_gets_its_own_row_beside_the_suites_and_is_never_pooled(tmp_path):
    """``python -m bench evaluate`` runs (tag ``source=external``) are ingested as their own
    labelled row; the suite's cell and the table-level claim ignore them."""
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    rng = np.random.default_rng(1)
    sets = (91.7 + rng.normal(0, 0.2, (4, 1)) + rng.normal(0, 0.4, (4, 20))).round(2).tolist()
    own = log_sets(tracker, tmp_path, "gm-mnist-ipc1", sets[:3], seed=0)
    submitted = log_sets(tracker, tmp_path, "gm-mnist-ipc1", [[50.0, 52.0, 51.0]], seed=0)
    tracker.set_tags(
        submitted,
        {"source": "external", "submitted_by": "someone", "file.0.sha256": "f" * 64},
    )
    out = tmp_path / "boards"
    write_leaderboards(tracker, out)
    rows = table_rows((out / "dc-table1.md").read_text())
    (mine,) = rows["gm-mnist-ipc1"]
    assert mine[HEADERS.index("runs")] == own  # not pooled with the submitted set
    assert mine[HEADERS.index("reproduced (%)")].endswith("(n=60)")
    (theirs,) = rows[f"gm-mnist-ipc1 (submitted: someone, {'f' * 12})"]
    assert theirs[HEADERS.index("runs")] == submitted
    assert theirs[HEADERS.index("reproduced (%)")].startswith("51.00")
    assert "1 of 1 comparable cell(s) reproduced" in (out / "dc-table1.md").read_text()


def test_a_damaged_record_is_named_and_left_out(tmp_path, capsys):
    """A record cut short (a kill mid-write before records were written atomically) does not
    stop the leaderboards: one line names it and the fix, every other cell is built."""
    out = tmp_path / "leaderboards"
    shutil.copytree(LEADERBOARDS_DIR, out)
    damaged = sorted((out / "runs").glob("*.json"))[0]
    damaged.write_text(damaged.read_text()[:100])
    write_leaderboards(None, out)
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning:")]
    assert f"ledger record {damaged} is damaged (JSONDecodeError" in line
    assert f"git checkout -- {damaged}" in line
    for name in ("mtt.md", "gtn.md", "pc-gm-report.md"):
        assert (out / name).is_file()


def test_every_link_in_the_committed_tables_resolves():
    """Each relative link of leaderboards/*.md (run records, committed set files, pictures)
    names a file of the checkout."""
    import re

    from bench.core.paths import LEADERBOARDS_DIR

    checked = 0
    for table in LEADERBOARDS_DIR.glob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+)\)", table.read_text()):
            if "://" in target:
                continue
            assert (table.parent / target).exists(), (table.name, target)
            checked += 1
    assert checked
