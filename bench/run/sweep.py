"""``python -m bench sweep``: many reproductions (recipes x seeds) at once, resumable.

Each task is one ``python -m bench reproduce RECIPE --seed S`` in its own process, so a task
that crashes takes nothing else with it and every result takes the one path of ``reproduce``.
The tasks run on an existing engine, never a scheduler of this project's own:

- ``local`` (default): a pool of ``--workers`` processes on this machine
  (``concurrent.futures``); each gets ``--threads`` CPU threads.
- ``ray``: one Ray task per reproduction, on the cluster at ``--ray-address`` or on a Ray
  instance started on this machine. Every node must see the data root and the tracking store:
  use a tracking server (``mlflow server``, docs/tracking-and-reliability.md) for a cluster.

All tasks log to one tracking store. A SQLite store is safe for a local sweep (``Tracker``
serialises its writers); a cluster needs a server.

With ``--per-set`` every synthetic set of a run is a task of its own (``reproduce --sets i``,
with the seeds the whole run gives that set): a paper design of 5 sets runs on 5 workers at once,
and ``bench leaderboard --ingest`` pools the shards into the design.

Resuming: a task is identified in the store by its recipe, seed, protocol hash (the resolved
config without speed-only settings) and sets. Before running, a sweep skips every task with a
FINISHED run, continues the newest unfinished run (FAILED, or RUNNING because its sweep was
killed) with ``--resume`` from its checkpoints, and starts the rest. A task that fails is
retried the same way, ``--retries`` times. Do not run two sweeps of the same tasks against one
store at the same time.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate
from tqdm import tqdm

from bench.core.config import parse_set_options
from bench.core.errors import UserError
from bench.core.paths import REPO_ROOT, include_path_env
from bench.run.options import (
    Location,
    RecipeOptions,
    RunOptions,
    format_sets,
    option,
    parse_sets,
    reproduce_argv,
    require_seed,
)
from bench.run.tracking import Tracker, resolve_tracking_uri
from bench.spec.recipes import Recipe, RecipeGroup, load_recipe, resolve


@dataclass(frozen=True)
class SweepOptions(RecipeOptions, Location):
    """Command-line options of ``sweep`` (``python -m bench sweep --help``); the recipe and
    location options are passed on to every task."""

    recipes: tuple[str, ...] = ()
    seeds: tuple[int, ...] = option((0,), "base seeds, one run each", nargs="+", type=int)
    executor: str = option(
        "local",
        "local: processes on this machine; ray: Ray tasks",
        choices=("local", "ray"),
    )
    workers: int | None = option(
        None,
        "tasks at a time (default: CPU cores // --threads; with --ray-address, as many as the "
        "cluster fits)",
        type=int,
    )
    threads: int = option(1, "CPU threads per task (OMP_NUM_THREADS; Ray's num_cpus per task)")
    ray_address: str | None = option(
        None,
        "join this Ray cluster (e.g. ray://head:10001 or head:6379); default: start Ray here. "
        "A cluster needs --tracking-uri of an MLflow server",
        metavar="ADDR",
    )
    gpus: float = option(
        0.0, "with --executor ray: GPUs reserved per task, e.g. 1 or 0.5 to share one by two"
    )
    retries: int = option(1, "times a failed task is continued from its checkpoints")
    per_set: bool = option(
        False,
        "one task per synthetic set of each run (reproduce --sets i): the sets of a design run "
        "at once on any workers, and the ledger pools them",
    )
    sets: str | None = option(
        None,
        "with --per-set: only these sets of each design, e.g. the missing ones that "
        "`python -m bench plan RECIPE --missing` prints; without: every task is this shard",
        metavar="SPEC",
    )


@dataclass(frozen=True)
class Task:
    """One reproduction of a sweep: a recipe at one seed, its resolved-config hash and the
    synthetic sets it computes (``reproduce --sets``: all of the design's, or one with
    ``--per-set``)."""

    recipe: str
    seed: int
    config_hash: str
    protocol_hash: str
    """``RunConfig.protocol_hash``: a run with it computed this task whatever its speed-only
    settings (a paper run on a CPU adds some, ``with_long_run_speed``)"""
    sets: str
    """``--sets`` SPEC of the task's sets (``0-4`` for a whole design of 5 sets)"""
    shard: bool = False
    """whether ``sets`` is a shard (passed as ``--sets``) rather than the whole design"""

    @property
    def name(self) -> str:
        return f"{self.recipe} seed {self.seed}" + (f" set {self.sets}" if self.shard else "")


@dataclass
class Outcome:
    """How a task of a sweep ended."""

    task: Task
    status: str = "pending"
    """``skipped`` (already FINISHED), ``FINISHED`` or ``FAILED``"""
    run_id: str = ""
    attempts: int = 0
    seconds: float = 0.0
    log: Path | None = None


def plan(options: SweepOptions) -> list[Task]:
    """The tasks of a sweep: every recipe (groups expanded to their members) at every seed.

    Raises:
        UserError: unknown recipe, bad ``--set`` or budget (checked here, before anything runs).
    """
    recipes: dict[str, Recipe] = {}  # once each, in order
    for name in options.recipes:
        recipe = load_recipe(name)
        members = (
            [load_recipe(m) for m in recipe.members]
            if isinstance(recipe, RecipeGroup)
            else [recipe]
        )
        for member in members:
            recipes.setdefault(member.name, member)
    set_options = parse_set_options(list(options.set_items))
    tasks = []
    for recipe in recipes.values():
        for seed in dict.fromkeys(options.seeds):
            config = resolve(
                recipe, options.budget, seed, set_options, options.dataset, options.eval_models
            )
            count, hashes = config.eval.num_exp, (config.config_hash(), config.protocol_hash())
            chosen = parse_sets(options.sets, count) if options.sets else tuple(range(count))
            if options.per_set:
                tasks += [Task(recipe.name, seed, *hashes, str(i), True) for i in chosen]
            else:
                tasks.append(
                    Task(recipe.name, seed, *hashes, format_sets(chosen), bool(options.sets))
                )
    return tasks


def task_runs(tracker: Tracker, task: Task) -> list:
    """The reproduction (parent) runs of ``task`` in the store, newest first: same protocol
    hash (runs from before protocol hashes: same config hash), seed and sets (runs from before
    shards computed every set of their design)."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.recipe = '{task.recipe}' and tags.seed = '{task.seed}'",
        order_by=["attributes.start_time DESC"],
    )

    def same(tags: dict) -> bool:
        if "protocol_hash" in tags:
            return tags["protocol_hash"] == task.protocol_hash
        return tags.get("config_hash") == task.config_hash

    return [
        r
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags
        and same(r.data.tags)
        and r.data.tags.get("sets", task.sets) == task.sets
    ]


def _state(tracker: Tracker, task: Task) -> tuple[str, str]:
    """``("FINISHED", run id)``, ``("unfinished", run id to resume)`` or ``("new", "")``."""
    runs = task_runs(tracker, task)
    for run in runs:
        if run.info.status == "FINISHED":
            return "FINISHED", run.info.run_id
    return ("unfinished", runs[0].info.run_id) if runs else ("new", "")


def task_command(options: SweepOptions, task: Task, tracking_uri: str, resume: str) -> list[str]:
    """The ``python -m bench reproduce`` command line of one task (continuing ``resume``): the
    sweep's recipe and location options, the task's seed, the sweep's store."""
    shared = {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(RunOptions)
        if hasattr(options, f.name)
    }
    run = RunOptions(
        **{
            **shared,
            "seed": task.seed,
            "tracking_uri": tracking_uri,
            "resume": resume or None,
            "sets": task.sets if task.shard else None,
        }
    )
    return [sys.executable, *reproduce_argv(task.recipe, run)]


def _die_with_parent_hook():
    """A ``preexec_fn`` that has the child sent SIGTERM when the thread that started it dies
    (Linux ``PR_SET_PDEATHSIG``), so a killed sweep leaves no orphan logging on; None
    elsewhere. libc is loaded here, in the parent: the child only makes one C call."""
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    return lambda: libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_command(command: list[str], log: str, threads: int, cwd: str | None) -> int:
    """Run one task's command with ``threads`` CPU threads, appending its output to ``log``;
    returns its exit code. Used by both executors (it runs on the Ray worker under ``ray``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        return subprocess.run(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent_hook(),
        ).returncode


class LocalExecutor:
    """``workers`` task processes at a time on this machine."""

    def __init__(self, workers: int, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.threads = threads

    def submit(self, command: list[str], log: Path) -> Future:
        """Queue one task's command (output appended to ``log``); returns its handle."""
        return self.pool.submit(run_command, command, str(log), self.threads, str(REPO_ROOT))

    def wait(self, handles: Iterable, timeout: float) -> set:
        """The handles that are done, after at most ``timeout`` seconds (empty if none)."""
        return wait(list(handles), timeout=timeout, return_when=FIRST_COMPLETED).done

    def result(self, handle: Future) -> int:
        """The exit code of a finished task."""
        return handle.result()

    def running(self, handles: Iterable) -> str:
        """How many of ``handles`` run now, for the progress bar."""
        return f"{sum(1 for h in handles if h.running())} running"

    def close(self) -> None:
        """Cancel the queued tasks (running ones end with their processes)."""
        self.pool.shutdown(wait=False, cancel_futures=True)


class RayExecutor:
    """One Ray task per reproduction, each reserving ``threads`` CPUs and ``gpus`` GPUs; the
    same methods as ``LocalExecutor``, with Ray object refs as handles.

    With ``address`` it joins that cluster and ships this checkout to the workers as the tasks'
    working directory; without it, it starts a Ray instance here with ``workers * threads``
    CPUs.
    """

    def __init__(self, address: str | None, workers: int, threads: int, gpus: float) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(
                "--executor ray needs Ray: pip install 'ray>=2.9' (or pip install -e '.[ray]')"
            ) from None
        self.ray = ray
        if address:
            excludes = [".git", ".venv", ".tox", "runs", "bench-results", "*.db"]
            ray.init(
                address=address,
                runtime_env={
                    "working_dir": str(REPO_ROOT),
                    "excludes": excludes,
                    "env_vars": include_path_env(),  # --include-path folders, seen by tasks
                },
                log_to_driver=False,
            )
            self.cwd = None  # the shipped working directory
        else:
            ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
            self.cwd = str(REPO_ROOT)
        self.remote = ray.remote(max_retries=0)(run_command).options(
            num_cpus=threads, num_gpus=gpus
        )
        self.threads = threads

    def submit(self, command: list[str], log: Path):
        return self.remote.remote(command, str(log), self.threads, self.cwd)

    def wait(self, handles: Iterable, timeout: float) -> set:
        handles = list(handles)
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:  # collect everything else that is ready too, without waiting again
            ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        return set(ready)

    def result(self, handle) -> int:
        return self.ray.get(handle)

    def running(self, handles: Iterable) -> str:
        return f"{len(list(handles))} in flight"  # Ray does not say which have started

    def close(self) -> None:
        self.ray.shutdown()


def _tracking_uri(options: SweepOptions) -> str:
    uri = resolve_tracking_uri(options.tracking_uri, options.out)
    if options.executor == "ray" and options.ray_address and not uri.startswith("http"):
        raise UserError(
            f"a sweep on a Ray cluster needs a tracking server every node can reach, not {uri}: "
            "start one with `mlflow server --backend-store-uri sqlite:///runs/mlflow-server.db "
            "--artifacts-destination runs/mlartifacts --host 0.0.0.0 --port 5000` and pass "
            "--tracking-uri http://<that host>:5000"
        )
    return uri


def _executor(options: SweepOptions):
    if options.executor == "local":
        return LocalExecutor(options.workers, options.threads)
    if options.executor == "ray":
        return RayExecutor(options.ray_address, options.workers, options.threads, options.gpus)
    raise UserError(f"--executor {options.executor!r}: choose local or ray")


def sweep(options: SweepOptions) -> list[Outcome]:
    """Run (or resume) every task of a sweep; returns how each ended.

    Shows one progress bar over all tasks (done, running, failed, ETA) and a line per finished
    or failed task; each task's own output goes to ``<out>/sweep-logs/<recipe>-seed<S>.log``.

    Raises:
        UserError: bad recipes or options (before anything runs).
    """
    if options.workers < 1 or options.threads < 1 or options.retries < 0:
        raise UserError("--workers and --threads must be at least 1, --retries at least 0")
    for seed in options.seeds:
        require_seed(seed)
    tasks = plan(options)
    uri = _tracking_uri(options)
    tracker = Tracker(uri, options.out)
    outcomes = {task: Outcome(task) for task in tasks}
    todo: list[tuple[Task, str]] = []
    for task in tasks:
        state, run_id = _state(tracker, task)
        if state == "FINISHED":
            outcomes[task].status, outcomes[task].run_id = "skipped", run_id
        else:
            todo.append((task, run_id))
    skipped = len(tasks) - len(todo)
    resumed = sum(1 for _, run_id in todo if run_id)
    print(
        f"sweep: {len(tasks)} task(s) — {skipped} already FINISHED (skipped), {resumed} "
        f"to resume, {len(todo) - resumed} new; executor {options.executor}, "
        f"{options.workers} worker(s) x {options.threads} thread(s); tracking {uri}"
    )
    if not todo:
        return list(outcomes.values())

    executor = _executor(options)
    logs = Path(options.out) / "sweep-logs"
    pending: dict = {}
    started: dict[Task, float] = {}

    def submit(task: Task, resume: str) -> None:
        outcome = outcomes[task]
        outcome.attempts += 1
        shard = f"-set{task.sets}" if task.shard else ""
        outcome.log = logs / f"{task.recipe}-seed{task.seed}{shard}.log"
        started[task] = time.perf_counter()
        pending[executor.submit(task_command(options, task, uri, resume), outcome.log)] = task

    failed = 0
    try:
        for task, resume in todo:
            submit(task, resume)
        with tqdm(
            total=len(tasks),
            initial=skipped,
            desc="sweep",
            unit="task",
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,  # a log file gets few lines
        ) as bar:
            while pending:
                bar.set_postfix_str(f"{executor.running(pending)}, {failed} failed", refresh=False)
                bar.update(0)  # redraws (elapsed, ETA) at most every mininterval
                for handle in executor.wait(pending, timeout=2.0):
                    task = pending.pop(handle)
                    outcome = outcomes[task]
                    code = executor.result(handle)
                    outcome.seconds += time.perf_counter() - started[task]
                    state, run_id = _state(tracker, task)
                    outcome.run_id = run_id
                    if code == 0 and state == "FINISHED":
                        outcome.status = "FINISHED"
                        bar.update(1)
                        tqdm.write(f"done    {task.name}: run {run_id} ({outcome.seconds:.0f} s)")
                    elif outcome.attempts <= options.retries:
                        tqdm.write(f"retry   {task.name}: exit {code}; see {outcome.log}")
                        submit(task, run_id if state == "unfinished" else "")
                    else:
                        outcome.status = "FAILED"
                        failed += 1
                        bar.update(1)
                        tqdm.write(f"FAILED  {task.name}: exit {code}; see {outcome.log}")
    finally:
        executor.close()
    results = list(outcomes.values())
    print(
        tabulate(
            [
                [
                    o.task.recipe,
                    o.task.seed,
                    o.task.sets,
                    o.status,
                    o.run_id,
                    o.attempts,
                    o.log or "",
                ]
                for o in results
            ],
            headers=["recipe", "seed", "sets", "status", "run", "attempts", "log"],
        )
    )
    return results
