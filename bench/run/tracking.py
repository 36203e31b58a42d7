"""MLflow tracking: every reproduction is one parent run, each synthetic set a nested child run.

The default store is an embedded SQLite database, ``<out>/mlflow.db``, with artifacts under
``<out>/mlartifacts``; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` selects any other store or
tracking server. The explicit ``MlflowClient`` API is used (no global active run), so a crash
handler can mark exactly the runs it owns as FAILED.

SQLite allows one writer at a time, and MLflow's first use of a new database creates its schema:
several processes logging to one ``sqlite:`` store at once (a local ``bench sweep``, or two
``reproduce`` commands) can fail with "database is locked" or a half-made schema. Every call to a
SQLite store therefore holds an inter-process file lock, ``<database>.lock``; tracking servers
serialise writes themselves.

Faults of the store are one-line ``TrackingError``s, early: before a run is created the store is
checked (a SQLite database's folder must be writable; a tracking server must answer
``/health`` within ``PROBE_TIMEOUT`` seconds, where MLflow's own retries would wait minutes), and
a store that stops answering in the middle of a run fails the next call after a few seconds of
retries (``HTTP_DEFAULTS``, unless the user set those variables) instead of hanging. What the
run computed stays in its checkpoints; ``--resume`` continues it once the store is back.

Every logged artifact's SHA-256 is recorded as the run tag ``sha256/<name>`` and in the
``SHA256SUMS`` beside the local copy (``bench.core.hashing``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from bench.core.errors import TrackingError, UserError
from bench.core.faults import SQLITE_MAX_PATH, store_fault
from bench.core.hashing import record_sha256, sha256_file, write_atomic
from bench.core.paths import require_writable_folder

EXPERIMENT = "distillbench"
PROBE_TIMEOUT = 5.0
"""seconds a tracking server has to answer ``/health`` before a run starts"""
KNOWN_SCHEMES = ("sqlite", "http", "https", "databricks", "postgresql", "mysql", "mssql")
"""tracking URI schemes (before any ``+driver``) MLflow logs runs to; its file store
(a plain path or ``file:``) is in maintenance mode and refuses new runs"""
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
"""MLflow's HTTP retry settings unless the environment sets them: about 7 s of retries (1 + 2 +
4) before a call fails, instead of MLflow's 7 retries with factor 2 (over 4 minutes)"""


def resolve_tracking_uri(uri: str | None, out: Path) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<out>/mlflow.db``
    (``Tracker`` creates and checks the folder)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def check_store(uri: str) -> None:
    """Fail fast when the store of ``uri`` cannot work: the URI must name a store MLflow can use
    (``KNOWN_SCHEMES``); the folder of a ``sqlite:///`` database must be writable (and the
    database, if it exists, a writable file) and its path short enough for SQLite to open; an
    ``http(s)`` tracking server must answer ``GET /health`` within ``PROBE_TIMEOUT`` seconds.

    Raises:
        TrackingError: naming the store, the reason and the fix.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in KNOWN_SCHEMES:
        raise TrackingError(
            f"tracking URI {uri!r} is not a store this suite can log to: use "
            "sqlite:///<folder>/mlflow.db, http(s)://<host>:<port> of an MLflow server, or a "
            "database URI (postgresql://, mysql://, mssql://); or leave --tracking-uri and "
            "MLFLOW_TRACKING_URI unset for the SQLite store under --out"
        )
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        fix = "pass --tracking-uri sqlite:///<writable folder>/mlflow.db or a writable --out"
        if len(str(database.resolve())) > SQLITE_MAX_PATH:
            raise TrackingError(
                f"the path of tracking store {uri} is {len(str(database.resolve()))} characters; "
                f"SQLite opens at most {SQLITE_MAX_PATH}: use a shorter --out or --tracking-uri"
            )
        try:
            require_writable_folder(database.parent, f"the folder of tracking store {uri}", fix)
        except UserError as exc:
            raise TrackingError(str(exc)) from None
        if database.exists() and (not database.is_file() or not os.access(database, os.W_OK)):
            raise TrackingError(f"tracking store {database} is not a writable file; {fix}")
    elif uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT).raise_for_status()
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise TrackingError(
                f"no MLflow tracking server answers at {uri} ({reason} within "
                f"{PROBE_TIMEOUT:g} s); start it (mlflow server --host ... --port ...) or leave "
                "out --tracking-uri to log to the local SQLite store under --out"
            ) from None


def _sqlite_lock(uri: str):
    """An inter-process lock beside the database of a ``sqlite:///`` URI; a no-op otherwise."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(uri.removeprefix("sqlite:///") + ".lock")


def template_store(cache: Path | None = None) -> Path:
    """An empty SQLite store with the schema of the installed MLflow, made once per MLflow
    version in ``cache`` (default ``$DISTILLBENCH_CACHE`` or ``~/.cache/distillbench``) and
    copied for every new ``sqlite:///`` store: MLflow makes a new database's schema by running
    its migrations, about 1-2 s per store (measured on the 2-core AMD EPYC), a copy takes
    milliseconds. Written to a temporary name and renamed, so concurrent first runs are safe; its
    SHA-256 is kept beside it and checked before every copy, and a template that fails the
    check is made anew (a damaged cache entry is never copied into a store)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    cache = cache or Path(
        os.environ.get("DISTILLBENCH_CACHE", Path.home() / ".cache" / "distillbench")
    )
    path = cache / f"mlflow-{mlflow.__version__}-empty.db"
    sums = path.with_name(path.name + ".sha256")
    if path.exists() and sums.exists() and sums.read_text().strip() == sha256_file(path):
        return path
    # missing, or damaged since it was made (or made before its hash was kept): made anew
    cache.mkdir(parents=True, exist_ok=True)
    # a name of its own each time: MLflow keeps the store of a URI it has opened in this process
    partial = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    partial.unlink(missing_ok=True)
    MlflowClient(tracking_uri=f"sqlite:///{partial}").search_experiments()  # makes the schema
    digest = sha256_file(partial)
    os.replace(partial, path)
    write_atomic(sums, digest)
    return path


def _new_sqlite_store(uri: str) -> None:
    """Copy ``template_store`` to the database of a ``sqlite:///`` ``uri`` that does not exist
    yet (call under its lock); a cache that cannot be written leaves MLflow to make the schema."""
    if not uri.startswith("sqlite:///"):
        return
    database = Path(uri.removeprefix("sqlite:///"))
    if database.exists():
        return
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        template = template_store()
    except (OSError, SQLAlchemyError, MlflowException):  # an unwritable cache: MLflow makes
        return  # the schema itself, as without a template
    shutil.copyfile(template, database)


@contextlib.contextmanager
def _store_faults(uri: str):
    """Within this block an exception that is a fault of the store ``uri`` (damaged, locked,
    full, unreachable: ``bench.core.faults.store_fault``) becomes its one-line
    ``TrackingError``; any other exception propagates as it is."""
    try:
        yield
    except Exception as exc:
        fault = store_fault(exc, uri)
        if fault is None:
            raise
        raise fault from None


class _Serialised:
    """``client`` with every method call made while holding ``lock``; a store that cannot be
    reached or written raises ``TrackingError``."""

    def __init__(self, client, lock, uri: str) -> None:
        self._client, self._lock, self._uri = client, lock, uri

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def locked(*args, **kwargs):
            with _store_faults(self._uri), self._lock:
                return attribute(*args, **kwargs)

        return locked


class Tracker:
    """Thin wrapper over ``MlflowClient`` for one experiment.

    Args:
        uri: tracking URI (see ``resolve_tracking_uri``).
        out: output folder; with the default SQLite store, artifacts go to ``out/mlartifacts``.
        experiment: experiment name.
    """

    def __init__(self, uri: str, out: Path, experiment: str = EXPERIMENT) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        for noisy in ("alembic", "mlflow.store.db.utils"):  # schema set-up chatter
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.uri = uri
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        check_store(uri)
        lock = _sqlite_lock(uri)
        # the client makes a new database's schema, and the experiment is looked up and created,
        # under the lock: concurrent first runs make one schema and one experiment
        with _store_faults(uri), lock:
            _new_sqlite_store(uri)
            self.client = _Serialised(MlflowClient(tracking_uri=uri), lock, uri)
            self.experiment_id = self._experiment_id(experiment, out)

    def _experiment_id(self, name: str, out: Path) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:") or self.uri.startswith("file:") or "://" not in self.uri:
            location = (out / "mlartifacts").resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it since (a tracking server's race)
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def start_run(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
        """Create a RUNNING run (nested under ``parent_id`` if given); returns its id."""
        tags = dict(tags)
        if parent_id is not None:
            tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return run.info.run_id

    def get_run(self, run_id: str):
        """The MLflow run; raises ``UserError`` if this store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise UserError(
                f"no run {run_id!r} in tracking store {self.uri}; pass the "
                "--tracking-uri/--out the run was started with"
            ) from None

    def children(self, parent_id: str) -> list:
        """The runs nested under ``parent_id`` (one per synthetic set)."""
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
        )

    def latest_finished(self, tags: dict[str, str]):
        """The most recently started FINISHED top-level run with all ``tags``, or None. Runs of
        sets made elsewhere (tag ``source=external``, ``python -m bench evaluate``) are never
        the suite's own measurement of a recipe and are skipped."""
        match = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"{match} and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        )
        return next(
            (
                r
                for r in runs
                if "mlflow.parentRunId" not in r.data.tags
                and r.data.tags.get("source") != "external"
            ),
            None,
        )

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log ``params`` as strings, in batches of 100 (MLflow's limit per call)."""
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set (or overwrite) tags of a run."""
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """Log namespaced metrics (``distill/loss``, ``eval/ConvNet/acc``) at ``step``."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        """The steps at which metric ``key`` of a run is already logged (a resumed run replays
        iterations after its last checkpoint and must not log them twice)."""
        return {m.step for m in self.client.get_metric_history(run_id, key)}

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """Copy the local file ``path`` into the run's artifacts, recording its SHA-256 in the
        ``SHA256SUMS`` beside it (first, so that it survives a store that went away) and as the
        run tag ``sha256/<artifact name>``."""
        path = Path(path)
        digest = record_sha256(path)
        name = f"{artifact_path}/{path.name}" if artifact_path else path.name
        self.client.log_artifact(run_id, str(path), artifact_path)
        self.set_tags(run_id, {f"sha256/{name}": digest})

    def download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        """Fetch artifact ``path`` of a run into the folder ``dst``; returns the local file."""
        return Path(self.client.download_artifacts(run_id, path, str(dst)))

    def set_status(self, run_id: str, status: str) -> None:
        """``RUNNING`` (on resume) or a terminal status: ``FINISHED``, ``FAILED``, ``KILLED``."""
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=status)
