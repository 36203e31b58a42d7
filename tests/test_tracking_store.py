"""A new SQLite store is a copy of a template MLflow made once: the same schema, working runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.run import tracking
from bench.run.tracking import Tracker, template_store


def _schema(database: Path) -> tuple[list, dict, list]:
    """Tables and indexes, every table's columns (name, type, not null, primary key) and the
    alembic version of a SQLite database (not the CREATE text: MLflow's own migrations order
    a table's constraints differently from one database to the next)."""
    with sqlite3.connect(database) as db:
        objects = db.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
        columns = {
            name: sorted(
                (c[1], c[2], c[3], c[5]) for c in db.execute(f'PRAGMA table_info("{name}")')
            )
            for kind, name in objects
            if kind == "table"
        }
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return objects, columns, version


def _default_experiment_made(database: Path) -> int:
    with sqlite3.connect(database) as db:
        query = "SELECT creation_time FROM experiments WHERE experiment_id = 0"
        return db.execute(query).fetchone()[0]


def test_a_new_store_is_the_template_with_the_schema_mlflow_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "cache"))
    from mlflow.tracking import MlflowClient

    made_by_mlflow = tmp_path / "own.db"
    MlflowClient(tracking_uri=f"sqlite:///{made_by_mlflow}").search_experiments()

    tracker = Tracker(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path)
    template = template_store()
    assert template.parent == tmp_path / "cache" and template.exists()
    assert _schema(tmp_path / "runs.db") == _schema(made_by_mlflow)
    # copied, not made again: MLflow's default experiment carries the template's creation time
    assert _default_experiment_made(tmp_path / "runs.db") == _default_experiment_made(template)
    run = tracker.start_run("set 0", {"seed": "0"})
    tracker.client.log_metric(run, "eval/ConvNet/acc", 91.5)
    assert tracker.get_run(run).data.metrics == {"eval/ConvNet/acc": 91.5}

    # made once: a second new store copies it, the template itself is not written
    made = template.stat().st_mtime_ns
    second = Tracker(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    assert template.stat().st_mtime_ns == made
    assert second.client.get_experiment_by_name(tracking.EXPERIMENT) is not None


def test_an_unwritable_cache_leaves_mlflow_to_make_the_schema(tmp_path, monkeypatch):
    def refuse(cache=None):
        raise PermissionError("read-only cache")

    monkeypatch.setattr(tracking, "template_store", refuse)
    tracker = Tracker(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path)
    run = tracker.start_run("set 0", {})
    assert tracker.get_run(run).info.status == "RUNNING"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "file:///tmp/mlruns"])
def test_only_new_sqlite_stores_are_copied(uri, monkeypatch):
    monkeypatch.setattr(tracking, "template_store", lambda cache=None: pytest.fail(uri))
    tracking._new_sqlite_store(uri)
