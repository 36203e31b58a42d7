"""``python -m bench plan``: per published cell, the paper-protocol sets done, those missing and
what the rest costs, before anyone spends it.

Done and missing come from the ledger (``bench.reports.ledger``): the most complete design of the
recipe's current version on the paper protocol (original data, no override that changes
results). The cost of a set is

    iterations x (seconds per outer iteration) + networks x (seconds per network)

with a network's seconds ``fixed + epochs x (seconds per epoch)``. The rates are measured, never
derived from FLOP counts: the compute seconds of the recipe's own paper sets in the ledger where
there are some (``time/distill_s`` and ``time/evaluate_s`` of each set), else ``plan --measure``,
which runs the recipe's paper configuration for a few outer iterations and two short evaluations
on this machine, one single-threaded process beside one other (as paper sets run on a small
machine: one set per core) and records the rates in ``leaderboards/benchmarks/plan-rates.json``.
A GPU figure is shown where the ledger holds a paper set made on a GPU.

A set that an older version of the recipe kept, from its ``distilled_since`` on (the same
distillation), is listed as "kept: evaluation only" and costed at its evaluation seconds:
``reproduce --distilled-from`` evaluates the committed file again (``bench.run.kept``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from bench.core.errors import UserError
from bench.core.hashing import write_atomic
from bench.core.provenance import cpu_name, git_commit
from bench.reports.ledger import Design, MeasuredRun, pool_designs, read_ledger
from bench.spec.method import Kind, load_method
from bench.spec.recipes import Recipe, RecipeGroup, load_recipe, resolve, with_long_run_speed

RATES_FILE = "plan-rates.json"
"""under ``leaderboards/benchmarks``: ``{cpu model: {recipe: rates}}`` written by ``--measure``"""


@dataclasses.dataclass(frozen=True)
class Rates:
    """Measured seconds of one recipe's paper configuration on one machine."""

    per_iteration: float
    """seconds per outer iteration (0 for coresets and the whole dataset)"""
    distill_fixed: float
    """seconds of a distillation besides its iterations (warm-up, compilation, selection)"""
    per_epoch: float
    """seconds per evaluation epoch of one network"""
    network_fixed: float
    """seconds per network besides its epochs (building it, the test pass)"""
    basis: str
    """how they were measured, in words"""

    def per_set(self, recipe_config: Any) -> float:
        """Seconds of one paper set of ``recipe_config`` (a ``RunConfig``)."""
        ev = recipe_config.eval
        iterations = getattr(recipe_config.method_config, "iterations", 0)
        networks = ev.num_eval * len(ev.models) * (2 if ev.stream else 1)
        network = self.network_fixed + (ev.epochs + 1) * self.per_epoch
        return self.distill_fixed + iterations * self.per_iteration + networks * network


def _duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{seconds / 60:.0f} min"


def paper_designs(recipe: Recipe, runs: list[MeasuredRun], version: int = 0) -> list[Design]:
    """The designs of ``recipe``'s ``version`` (default: the current one) on the paper
    protocol, most complete first."""
    mine = [
        r
        for r in runs
        if r.recipe == recipe.name
        and r.recipe_version == str(version or recipe.version)
        and r.budget == "paper"
        and not r.overrides
        and not r.submitted
        and r.dataset in ("", recipe.dataset)
    ]
    return sorted(pool_designs(mine), key=lambda d: (-len(d.sets), d.key[1]))


def missing_sets(
    recipe: Recipe, runs: list[MeasuredRun]
) -> tuple[list[int], dict[int, str], Design | None]:
    """What the most complete paper design of ``recipe`` lacks (every set where there is none):
    the sets to distil; the sets to evaluate only, whose files an older version of the recipe
    from its ``distilled_since`` on kept in the ledger (seed 0, the design the current one
    continues), as set index -> run id of the record (for ``reproduce --distilled-from``); and
    that design."""
    designs = paper_designs(recipe, runs)
    best = designs[0] if designs else None
    size = resolve(recipe, "paper", 0).eval.num_exp
    done = best.sets if best else {}
    missing = [i for i in range(size) if i not in done]
    kept: dict[int, str] = {}
    for version in range(recipe.version - 1, recipe.distilled_since - 1, -1):  # newest first
        for design in paper_designs(recipe, runs, version):
            if design.key[1] != "0":
                continue
            for run in design.runs:
                for record in run.set_records:
                    if record.index in missing and record.file and record.index in design.sets:
                        kept.setdefault(record.index, run.run_id)
    return [i for i in missing if i not in kept], dict(sorted(kept.items())), best


def _ledger_rates(designs: list[Design], gpu: bool, evaluation_only: bool = False) -> float | None:
    """Median compute seconds per set of the designs' sets made on a GPU (``gpu``) or a CPU,
    from their records (distillation + evaluation seconds, else wall time; with
    ``evaluation_only`` the evaluation seconds alone)."""
    seconds = []
    for design in designs:
        for run in design.runs:
            for record in run.set_records:
                if record.hardware.startswith("cuda") != gpu or record.distilled_in:
                    continue
                if record.distill_s is not None and record.evaluate_s is not None:
                    seconds.append(record.evaluate_s + (0 if evaluation_only else record.distill_s))
                elif record.wall_s is not None and not evaluation_only:
                    seconds.append(record.wall_s)
    return statistics.median(seconds) if seconds else None


def read_rates(folder: Path) -> dict[str, dict[str, dict]]:
    """``{cpu model: {recipe: Rates fields}}`` from ``folder/plan-rates.json`` (empty if none)."""
    path = folder / RATES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def plan_rows(
    names: list[str], ledger: Path, rates_folder: Path, machine: str | None = None
) -> list[list[str]]:
    """The plan's rows for the recipes ``names`` (groups expanded): recipe, published, paper
    sets done, missing, seconds per set on this machine and for the rest, per set on a GPU,
    and the basis of the estimate. ``machine``: the CPU model whose measured rates are used
    (default: this machine's)."""
    runs = read_ledger(ledger)
    measured = read_rates(rates_folder).get(machine or cpu_name(), {})
    rows = []
    for recipe in recipes_of(names):
        if recipe.published is None:
            continue
        config = resolve(recipe, "paper", 0)
        distil, kept, best = missing_sets(recipe, runs)
        size = config.eval.num_exp
        done = sorted(best.sets) if best else []
        # the rates of this version's sets, else of the versions whose sets it would distil
        versions = range(recipe.version, recipe.distilled_since - 1, -1)
        measured_designs = [d for v in versions for d in paper_designs(recipe, runs, v)]
        here = _ledger_rates(measured_designs, gpu=False)
        evaluation = _ledger_rates(measured_designs, gpu=False, evaluation_only=True)
        sets_measured = sum(len(d.sets) for d in measured_designs)
        basis = f"{sets_measured} paper set(s) of this recipe (ledger)" if here else ""
        if here is None and recipe.name in measured:
            rates = Rates(**measured[recipe.name])
            here, basis = rates.per_set(config), rates.basis
        gpu = _ledger_rates(measured_designs, gpu=True)
        cores = os.cpu_count() or 1
        rest = None if here is None else here * math.ceil(len(distil) / cores)
        if rest is not None and kept:  # kept sets: evaluation only, one after another
            rest = None if evaluation is None else rest + evaluation * len(kept)
        shown = ", ".join(map(str, distil))
        if kept:
            shown += ("; " if shown else "") + ", ".join(map(str, kept)) + " kept: evaluation only"
        rows.append(
            [
                recipe.name,
                f"{recipe.published.mean}",
                f"{len(done)} of {size}",
                shown or "none",
                _duration(here),
                _duration(rest) if distil or kept else "—",
                _duration(gpu),
                basis or "not measured (plan --measure)",
            ]
        )
    return rows


PLAN_HEADERS = (
    "recipe",
    "published (%)",
    "paper sets done",
    "missing sets",
    "per set, 1 core",
    "rest, one set per core",
    "per set, GPU",
    "basis",
)


def recipes_of(names: list[str]) -> list[Recipe]:
    """The recipes ``names`` name, groups expanded into their members."""
    found: dict[str, Recipe] = {}  # each once, in order
    for name in names:
        recipe = load_recipe(name)
        members = recipes_of(list(recipe.members)) if isinstance(recipe, RecipeGroup) else [recipe]
        for member in members:
            found.setdefault(member.name, member)
    return list(found.values())


def _stand_in(card: Any, split: str) -> Any:
    """Random images of the card's shape and split size, labels cycling through the classes:
    the same work for every method here (no step depends on pixel values' meaning)."""
    from bench.data.real import RealSet

    count = card.splits[split]
    generator = torch.Generator().manual_seed(0)
    images = torch.randn((count, card.channels, *card.image_size), generator=generator)
    labels = torch.arange(count) % card.num_classes
    return RealSet(images, labels, card)


def measure(recipe: Recipe, data_root: Path, iterations: int = 3, epochs: int = 100) -> Rates:
    """Time ``recipe``'s paper configuration on this machine's CPU in one thread (paper sets
    on a small machine run one per core): ``iterations`` outer iterations (the first is
    warm-up) and one network of the recipe's model trained for 1 epoch (warm-up) and for
    ``epochs`` (fewer where they would take more than about 15 s), then tested twice (the
    first a warm-up), on the recipe's data or, where it is not there, stand-in data of its
    shape.

    Raises:
        UserError: the method cannot run here (e.g. MTT without expert trajectories).
    """
    from bench.data.real import load_card, load_real
    from bench.evaluation.evaluate import test_accuracy, test_augmenter, train_on_synthetic

    if iterations < 2:
        raise UserError("--iterations must be at least 2 (the first is a warm-up)")
    torch.set_num_threads(1)
    method = load_method(recipe.method)
    distilled = method.kind is Kind.DISTILLED
    overrides = {"method": {"iterations": str(iterations)}} if distilled else {}
    device = torch.device("cpu")
    config = with_long_run_speed(resolve(recipe, "paper", 0, overrides), method.long_run_speed)
    card = load_card(config.dataset)
    try:
        train, test = (load_real(card, data_root, split) for split in ("train", "test"))
        data = "real data"
    except UserError:
        train, test = _stand_in(card, "train"), _stand_in(card, "test")
        data = "stand-in data of the same shape"
    if method.preflight is not None:
        method.preflight(config.method_config)
    if method.prepare_real is not None:
        train, test = method.prepare_real(train, test, config.method_config)
    stamps = [time.perf_counter()]
    synset = method.distill(
        train,
        config.ipc,
        config.method_config,
        0,
        device,
        after_iteration=lambda it, metrics, state: stamps.append(time.perf_counter()),
    )
    total = time.perf_counter() - stamps[0]
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    per_iteration = statistics.median(steps[1:]) if distilled and len(steps) > 1 else 0.0
    distill_fixed = total - iterations * per_iteration if distilled else total
    # one network of the recipe's model, as evaluate_synthetic_set trains and tests each:
    # training timed per epoch, the test pass (the rest of a network's cost) on its own
    model, protocol = config.eval.models[0], config.eval
    timed = {}
    for count in (1, epochs):  # the first trains (and compiles) once, untimed
        if count == epochs:  # about 15 s of training (the whole dataset: 1 epoch)
            epochs = count = max(1, min(epochs, int(15 / timed[1])))
        started = time.perf_counter()
        net = train_on_synthetic(
            model, synset, card, dataclasses.replace(protocol, epochs=count), 0, device
        )
        timed[count] = time.perf_counter() - started
    augment = test_augmenter(protocol, 0)
    for _ in range(2):  # the first pass compiles where eval.compile_test says so
        started = time.perf_counter()
        test_accuracy(net, test, protocol.batch_test, device, augment, protocol.compile_test)
        network_fixed = time.perf_counter() - started
    per_epoch = timed[epochs] / (epochs + 1)
    what = f"{iterations - 1} outer iteration(s) after a warm-up, " if distilled else ""
    return Rates(
        per_iteration,
        max(0.0, distill_fixed),
        per_epoch,
        network_fixed,
        f"measured ({what}a network of {epochs} epochs and its test pass; {data}; "
        f"1 thread, {cpu_name()}; commit {git_commit()[:12]}; "
        f"{time.strftime('%Y-%m-%d')})",
    )


def record_rates(folder: Path, recipe: str, rates: Rates) -> Path:
    """Add ``rates`` of ``recipe`` on this machine's CPU model to ``folder/plan-rates.json``
    (written atomically; other machines' and recipes' entries kept)."""
    path = folder / RATES_FILE
    content = read_rates(folder)
    content.setdefault(cpu_name(), {})[recipe] = dataclasses.asdict(rates)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode())
    return path


def render_plan(rows: list[list[str]], basis: bool = True) -> str:
    """The plan as a Markdown table; ``basis=False`` leaves out the column saying how each
    estimate was measured (the README states it once above its table)."""
    headers = PLAN_HEADERS if basis else PLAN_HEADERS[:-1]
    rows = rows if basis else [r[:-1] for r in rows]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
