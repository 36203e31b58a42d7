"""Leaderboards are generated from MLflow runs only, never from published numbers."""

from __future__ import annotations

import json

import pytest

from bench.reports.leaderboard import HEADERS, MISSING, render_table, write_leaderboards
from bench.run.tracking import Tracker
from bench.spec.recipes import load_recipe


def log_reproduction(tracker, recipe, acc, std, n, budget="smoke", status="FINISHED", **tags):
    """A parent run with the tags and metrics the runner writes."""
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
    assert len(rows) == 40  # every DC Table 1 recipe has a row

    gm = {r[HEADERS.index("budget")]: r for r in rows["gm-mnist-ipc1"]}
    assert list(gm) == ["reduced", "smoke"]  # larger budget first; newest smoke run only
    assert gm["smoke"][HEADERS.index("reproduced (%)")] == "86.79 ± 0.68 (n=3)"
    assert gm["smoke"][HEADERS.index("run")] == ids["new"]
    assert gm["reduced"][HEADERS.index("published (%)")].startswith("91.7 ± 0.5")
    (jpeg,) = rows["gm-cifar10-ipc1"]
    assert jpeg[HEADERS.index("dataset")] == "CIFAR-10 (JPEG copy)"

    # the FAILED run and all unmeasured recipes: dashes in every measured column
    for name in ("gm-svhn-ipc1", "herding-mnist-ipc1", "whole-cifar10"):
        (row,) = rows[name]
        assert row[HEADERS.index("reproduced (%)") :] == [MISSING] * 4
    # no reproduced cell holds the recipe's published number
    for name, recipe_rows in rows.items():
        published = load_recipe(name).published
        for row in recipe_rows:
            if published is not None:
                assert not row[HEADERS.index("reproduced (%)")].startswith(f"{published.mean:.2f}")
    assert ids["failed"] not in (out / "dc-table1.md").read_text()
    assert (out / "dc-table1.png").is_file()
    record = json.loads((out / "runs" / f"{ids['new']}.json").read_text())
    assert record["tags"]["git_commit"] == "abc123" and record["metrics"]["eval/ConvNet/n"] == 3
    assert not (out / "runs" / f"{ids['old']}.json").exists()  # only runs the table shows


def test_one_renderer_gives_markdown_and_latex():
    cells = [["gm-mnist-ipc1", "86.79 ± 0.68 (n=3)"]]
    markdown = render_table(cells, ("recipe", "reproduced"), "markdown")
    latex = render_table(cells, ("recipe", "reproduced"), "latex")
    assert markdown.splitlines()[0].startswith("| recipe") and "86.79 ± 0.68" in markdown
    assert "\\toprule" in latex and "gm-mnist-ipc1" in latex
    with pytest.raises(ValueError, match="unknown table format"):
        render_table(cells, ("recipe", "reproduced"), "html")
