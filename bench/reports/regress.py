"""CI regression of measured accuracies (``python -m bench regress``).

A fixed smoke suite, ``leaderboards/regress-suite.toml`` (one DC recipe per dataset with real
data on the CI machines, one coreset baseline and one entry per further method family; the file
says why each entry's overrides and tolerance are what they are), is re-run with seed 0 at the
``smoke`` budget, each run logged to MLflow like any reproduction, and compared with the
baselines committed in ``leaderboards/regress-smoke.json``: the per-network accuracies of the
project's own measured smoke runs, with their run id, commit, seed and hardware (written by
``--record``).

An entry may shrink its recipe's smoke budget further (``overrides``, as ``--set``; recorded
with the run) and may need files made first (``setup``: a command a method registers, e.g.
MTT's ``experts``, run into a fresh folder inside ``--out`` at every regress run, so an entry
needs nothing prepared beforehand).

The test, per suite entry: a one-sided Welch t-test (``scipy.stats.ttest_ind``,
``equal_var=False``, ``alternative="less"``) of H0 ``mu_now >= mu_baseline - tolerance``
against H1 ``mu_now < mu_baseline - tolerance``, with ``tolerance = 1.0`` percentage point (or
the entry's own, with its reason) and ``alpha = 0.01``. The entry fails when H0 is rejected:
the accuracy dropped by more than the tolerance, significantly. Without spread on either side
(identical accuracies) the test degenerates and the entry fails exactly when the mean dropped by
more than the tolerance.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
from pydantic import Field
from scipy import stats

from bench.core.errors import ConfigError, UserError
from bench.core.hashing import write_atomic
from bench.core.paths import LEADERBOARDS_DIR
from bench.core.schema import TomlModel, parse, read_toml

SUITE_FILE = LEADERBOARDS_DIR / "regress-suite.toml"
"""the suite: which recipes, with which overrides, setup and tolerances (and why)"""
BASELINES = LEADERBOARDS_DIR / "regress-smoke.json"
BUDGET = "smoke"
SEED = 0
TOLERANCE = 1.0
ALPHA = 0.01
TEST = (
    f"one-sided Welch t-test, H1: mean < baseline mean - {TOLERANCE} pp, alpha {ALPHA} "
    "(scipy.stats.ttest_ind, equal_var=False, alternative='less')"
)


class SuiteEntry(TomlModel):
    """One ``[[entry]]`` of the suite file: a recipe and the dataset copy it runs on."""

    recipe: str = Field(description="the recipe to run")
    dataset: str | None = Field(None, description="the dataset copy (None: the recipe's own)")
    overrides: list[str] = Field(
        [], description="--set items on top of the smoke budget; {work} is setup's folder"
    )
    setup: list[str] = Field(
        [],
        description="argv of a registered command run before the recipe, with {work} replaced "
        "by a fresh folder <out>/regress-setup/<recipe> and the run's location options appended",
    )
    tolerance: float = Field(
        TOLERANCE, gt=0, description="percentage points the mean may drop before the test fails"
    )
    tolerance_reason: str = Field("", description="why the tolerance is not the default")

    @property
    def key(self) -> str:
        """``recipe`` or ``recipe@dataset copy``: the entry's name in the baseline file."""
        return suite_key(self.recipe, self.dataset)


class SuiteFile(TomlModel):
    """The suite file: its ``[[entry]]`` tables, in the order they run."""

    entry: list[SuiteEntry] = Field(min_length=1)


def suite_key(recipe: str, dataset: str | None) -> str:
    """The name of an entry (and of its baseline): ``recipe`` or ``recipe@dataset copy``."""
    return f"{recipe}@{dataset}" if dataset else recipe


def load_suite(path: Path = SUITE_FILE) -> tuple[SuiteEntry, ...]:
    """The entries of the suite file ``path``.

    Raises:
        ConfigError: the file is missing, not TOML, or does not fit ``SuiteFile`` (one line
            per problem).
    """
    if not path.is_file():
        raise ConfigError(f"no regression suite at {path}: run from a checkout of the suite")
    suite = parse(SuiteFile, read_toml(path, "regression suite"), f"regression suite {path.name}")
    return tuple(suite.entry)


@dataclass(frozen=True)
class Baseline:
    """The committed result of one suite entry and where it came from."""

    recipe: str
    dataset: str | None
    budget: str
    seed: int
    model: str
    values: list[float]
    """per-network test accuracies (percent) of the recorded run"""
    run_id: str
    git_commit: str
    hardware: str
    recorded: str
    """ISO date of the recording"""

    @property
    def key(self) -> str:
        """The ``SuiteEntry.key`` this baseline belongs to."""
        return suite_key(self.recipe, self.dataset)


@dataclass(frozen=True)
class Comparison:
    """Outcome of ``drop_test`` for one entry."""

    baseline_mean: float
    measured_mean: float
    p_value: float
    failed: bool


def drop_test(
    measured: list[float], baseline: list[float], tolerance: float = TOLERANCE, alpha: float = ALPHA
) -> Comparison:
    """Did the accuracy drop below the baseline by more than ``tolerance`` (percentage points),
    significantly at ``alpha``? See the module docstring for the test.

    Raises:
        ValueError: an empty list of accuracies.
    """
    if not measured or not baseline:
        raise ValueError("drop_test needs at least one measured and one baseline accuracy")
    now, before = np.asarray(measured, float), np.asarray(baseline, float)
    shifted = before - tolerance
    p = float("nan")
    if len(now) > 1 and len(before) > 1 and (now.std() > 0 or before.std() > 0):
        p = float(stats.ttest_ind(now, shifted, equal_var=False, alternative="less").pvalue)
    failed = p < alpha if not math.isnan(p) else bool(now.mean() < shifted.mean())
    return Comparison(float(before.mean()), float(now.mean()), p, failed)


def load_baselines(path: Path) -> dict[str, Baseline]:
    """Baselines by suite key.

    Raises:
        UserError: missing or unreadable file (the message says how to record one).
    """
    if not path.is_file():
        raise UserError(f"no regression baselines at {path}; record them: bench regress --record")
    try:
        raw = json.loads(path.read_text())
        baselines = [Baseline(**entry) for entry in raw["baselines"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(
            f"regression baselines {path} are unreadable ({exc}); re-record them: "
            "bench regress --record"
        ) from None
    return {b.key: b for b in baselines}


def _setup(entry: SuiteEntry, options) -> Path:
    """Run ``entry.setup`` into a fresh folder (module docstring); returns the folder."""
    import shutil

    from bench.run.options import Location, to_argv
    from bench.spec.method import registered_commands, resolve_target

    work = (Path(options.out) / "regress-setup" / entry.recipe).resolve()
    if not entry.setup:
        return work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    name, *argv = (part.replace("{work}", str(work)) for part in entry.setup)
    location = {f.name: getattr(options, f.name) for f in dataclasses.fields(Location)}
    where = to_argv(Location(**location))
    code = resolve_target(registered_commands()[name])([*argv, *where])
    if code:
        raise UserError(f"regress: the setup of {entry.key} ({name}) failed with exit code {code}")
    return work


def run_entry(entry: SuiteEntry, options) -> tuple[str, list[float], dict[str, str]]:
    """Reproduce one suite entry at the smoke budget (after its ``setup``, with its
    ``overrides``); returns (run id, accuracies, run tags)."""
    from bench.run.runner import Reproduction
    from bench.spec.recipes import load_recipe

    work = _setup(entry, options)
    overrides = tuple(o.replace("{work}", str(work)) for o in entry.overrides)
    options = dataclasses.replace(
        options,
        budget=BUDGET,
        seed=SEED,
        dataset=entry.dataset,
        set_items=(*options.set_items, *overrides),
    )
    run = Reproduction.start(load_recipe(entry.recipe), options)
    verdict = run.run()
    tags = run.tracker.get_run(run.parent).data.tags
    return run.parent, list(verdict.values), tags


def run_entries(
    entries: tuple[SuiteEntry, ...], options, jobs: int
) -> list[tuple[str, list[float], dict[str, str]]]:
    """``run_entry`` for every entry, in order, or ``jobs`` entries at a time, each in its own
    process with its share of the CPU threads (``bench.run.processes``); results in entry
    order. A thread count other than the recording's may move accuracies by float-level
    amounts, which the tolerances absorb as they absorb CPU models."""
    if jobs == 1 or len(entries) == 1:
        return [run_entry(entry, options) for entry in entries]
    from bench.core.device import pick_device
    from bench.run.processes import map_in_processes, threads_per_process

    workers = min(jobs, len(entries))
    threads = threads_per_process(pick_device(options.device), workers)
    return map_in_processes(run_entry, [(e, options) for e in entries], workers, threads)


def regress(
    options, entries: tuple[SuiteEntry, ...], path: Path, record: bool, jobs: int = 1
) -> int:
    """Run ``entries`` (``jobs`` at a time, ``run_entries``) and compare each with its baseline
    in ``path`` (or, with ``record``, write the measured runs there as the new baselines).
    Returns the exit code: 0 when no entry regressed, 1 otherwise.

    Raises:
        UserError: missing baselines for an entry (when not recording), ``jobs`` below 1, or
        any run error.
    """
    from tabulate import tabulate

    if jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    baselines = {} if record else load_baselines(path)
    missing = [e.key for e in entries if e.key not in baselines]
    if not record and missing:
        raise UserError(
            f"no baseline for {', '.join(missing)} in {path}; record it: bench regress --record"
        )
    rows, recorded, failures = [], [], 0
    results = run_entries(entries, options, jobs)
    for entry, (run_id, values, tags) in zip(entries, results, strict=True):
        if record:
            recorded.append(
                Baseline(
                    entry.recipe,
                    entry.dataset,
                    BUDGET,
                    SEED,
                    tags.get("eval_models", "ConvNet").split()[0],
                    values,
                    run_id,
                    tags.get("git_commit", "unknown"),
                    tags.get("hardware", "unknown"),
                    date.today().isoformat(),
                )
            )
            rows.append([entry.key, f"{np.mean(values):.2f}", len(values), run_id, "recorded"])
            continue
        base = baselines[entry.key]
        result = drop_test(values, base.values, entry.tolerance)
        failures += result.failed
        rows.append(
            [
                entry.key,
                f"{result.baseline_mean:.2f} (n={len(base.values)}, {base.git_commit[:8]})",
                f"{result.measured_mean:.2f} (n={len(values)})",
                f"{result.measured_mean - result.baseline_mean:+.2f}",
                "n/a" if math.isnan(result.p_value) else f"{result.p_value:.3g}",
                "REGRESSED" if result.failed else "ok",
            ]
        )
    if record:  # replace the entries just run, keep the others
        kept = load_baselines(path) if path.is_file() else {}
        kept.update({b.key: b for b in recorded})
        payload = {
            "budget": BUDGET,
            "seed": SEED,
            "test": TEST,
            "baselines": [asdict(b) for b in kept.values()],
        }
        write_atomic(path, json.dumps(payload, indent=2) + "\n")
        print(tabulate(rows, headers=["entry", "mean (%)", "n", "run", ""]))
        print(f"\nbaselines written to {path}")
        return 0
    headers = ["entry", "baseline (%)", "measured (%)", "change", "p", "result"]
    print(tabulate(rows, headers=headers))
    print(f"\ntest: {TEST}")
    if failures:
        print(f"{failures} of {len(entries)} entr(ies) regressed")
        return 1
    print(f"no regression in {len(entries)} entr(ies)")
    return 0
