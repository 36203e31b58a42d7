"""Command line: ``python -m bench {list, methods, validate, schema, reproduce, evaluate, plan,
sweep, regress, leaderboard, speed}`` plus the commands methods register (``experts``).

The options of ``reproduce``, ``evaluate``, ``regress`` and ``sweep`` are generated from the
dataclasses of ``bench.run.options``; this module knows no method by name (methods come from the
registry, ``bench.spec.method``). User errors (unknown recipe or key, missing data, bad shapes,
corrupt checkpoints, NaN loss) print one ``error: ...`` line and exit non-zero, without a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.core.errors import UserError
from bench.core.faults import explain
from bench.core.memory import keep_freed_memory
from bench.core.paths import INCLUDE_PATH_VARIABLE, LEADERBOARDS_DIR, add_include_paths
from bench.run.options import EvaluateOptions, Location, RunOptions, add_options, from_namespace
from bench.spec.method import registered_commands


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    if args.power:
        return _list_power()

    from bench.reports.fidelity import last_check
    from bench.spec.recipes import (
        Recipe,
        format_published,
        format_source,
        ipc_label,
        load_recipe,
        recipe_names,
        variant_label,
    )

    rows = []
    for name in recipe_names():
        try:
            recipe = load_recipe(name)
        except UserError as exc:  # one broken file must not hide the others
            problems = _problems(exc)
            more = f" (+{len(problems) - 1} more: python -m bench validate {name})"
            rows.append([name, "BROKEN", "", "", "", "", problems[0] + more * (len(problems) > 1)])
            continue
        if isinstance(recipe, Recipe):
            checked = "" if recipe.variant else last_check(name, recipe.method)
            rows.append(
                [
                    name,
                    recipe.method,
                    recipe.dataset,
                    ipc_label(recipe.ipc),
                    variant_label(recipe) + (f"; {checked}" if checked else ""),
                    format_published(recipe),
                    format_source(recipe),
                ]
            )
        else:
            members = recipe.members
            shown = ", ".join(members[:3]) + (
                f", ... ({len(members)} recipes)" if len(members) > 3 else ""
            )
            rows.append([name, "group", "", "", "", "", "runs " + shown])
    headers = ["recipe", "method", "dataset", "ipc", "protocol", "published (%)", "source"]
    print(tabulate(rows, headers=headers))
    return 0


def _list_power() -> int:
    """``list --power``: what each budget can resolve (``bench.evaluation.stats.power``)."""
    from tabulate import tabulate

    from bench.evaluation.stats import ASSUMED_ICC, POWER, power
    from bench.spec.recipes import BUDGETS, Recipe, load_recipe, recipe_names, resolve

    rows = []
    for name in recipe_names():
        recipe = load_recipe(name)
        if not isinstance(recipe, Recipe):
            continue
        for budget in reversed(BUDGETS):
            ev = resolve(recipe, budget, seed=0).eval
            figure = power(recipe.published, recipe.margin, recipe.alpha, ev.num_exp, ev.num_eval)
            rep = "never" if figure.reproduced_up_to is None else f"{figure.reproduced_up_to:.2f}"
            beyond = figure.not_reproduced_from
            missed = "never" if beyond is None else f"{beyond:.2f}"
            if figure.why:
                rep = missed = "n/a"
            rows.append(
                [
                    name,
                    budget,
                    f"{ev.num_exp} x {ev.num_eval}",
                    recipe.margin,
                    rep,
                    missed,
                    figure.why or figure.assumption,
                ]
            )
    print(
        f"|Δ| = |measured - published| in pp; a figure holds with {POWER:.0%} probability, from "
        f"the published std and an assumed ICC of {ASSUMED_ICC} (between-set share of the "
        "variance) on both sides. Only 'paper' runs are ever tested against the paper."
    )
    headers = [
        "recipe",
        "budget",
        "sets x nets",
        "margin",
        "reproduced if |Δ| ≤",
        "not reproduced if |Δ| ≥",
        "assumption / why not",
    ]
    print(tabulate(rows, headers=headers, disable_numparse=True))
    return 0


def _problems(exc: Exception) -> list[str]:
    """One line per problem: all of a file's schema problems, else the error's message (an
    unexpected exception, e.g. a method that fails to import, is named by its type)."""
    from bench.core.schema import SchemaError

    if isinstance(exc, SchemaError):
        return list(exc.problems)
    if isinstance(exc, UserError):
        return [str(exc)]
    return [f"{type(exc).__name__}: {exc}".splitlines()[0]]


def _check_recipe(name: str) -> None:
    """Everything ``validate`` checks of one recipe or group; raises at the first problem."""
    from bench.data.real import load_card
    from bench.spec.recipes import BUDGETS, Recipe, load_recipe, resolve

    recipe = load_recipe(name)
    if isinstance(recipe, Recipe):
        load_card(recipe.dataset)
        for baseline in recipe.baselines:
            if not isinstance(load_recipe(baseline), Recipe):
                raise UserError(f"baseline {baseline} is a group, not a recipe")
        for budget in BUDGETS:
            resolve(recipe, budget, seed=0)
    else:
        for member in recipe.members:
            if not isinstance(load_recipe(member), Recipe):
                raise UserError(f"group {name}: member {member} is itself a group")


def _cmd_validate(args: argparse.Namespace) -> int:
    from bench.data.real import known_datasets, load_card
    from bench.spec.recipes import recipe_names

    checks = [("recipe", name, _check_recipe) for name in args.recipes or recipe_names()]
    if not args.recipes:
        checks += [("dataset card", name, load_card) for name in known_datasets()]
    failed = {"recipe": 0, "dataset card": 0}
    for what, name, check in checks:
        label = name if what == "recipe" else f"{name} (dataset card)"
        try:
            check(name)
            print(f"ok      {label}")
        except Exception as exc:  # noqa: BLE001  every problem is one line, never a traceback
            failed[what] += 1
            for problem in _problems(exc):
                print(f"FAILED  {label}: {problem}")
    summary = []
    for what in failed:
        total = sum(1 for check in checks if check[0] == what)
        if total or what == "recipe":
            summary.append(f"{total - failed[what]} of {total} {what}(s) valid")
    print(", ".join(summary))
    return 1 if any(failed.values()) else 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from bench.spec.recipe_schema import write_schemas

    for path in write_schemas(Path(args.out) if args.out else None):
        print(f"wrote {path}")
    return 0


def _method_fields(method) -> int:
    """Print ``method``'s config fields, as recipe ``[method]`` keys and ``--set method.KEY``."""
    import textwrap

    from tabulate import tabulate

    from bench.core.config import field_help

    print(f"{method.name}: {method.description}")
    print(f"config {method.config_class.__name__} (recipe [method] keys, --set method.KEY=VALUE)")
    rows = [
        [
            f.name,
            f.type,
            f.default,
            textwrap.fill(("(speed only) " if f.speed_only else "") + f.description, 60),
        ]
        for f in field_help(method.config_class)
    ]
    print(tabulate(rows, headers=["key", "type", "default", "description"], tablefmt="simple"))
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.spec.method import load_method, registered_methods

    if args.name:
        return _method_fields(load_method(args.name))
    rows = []
    for name, target in sorted(registered_methods().items()):
        try:
            method = load_method(name)
            rows.append([name, method.kind.value, target, method.description])
        except UserError as exc:
            rows.append([name, "?", target, f"cannot be loaded: {exc}"])
    print(tabulate(rows, headers=["method", "kind", "registered as", "description"]))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from bench.run.runner import reproduce

    reproduce(args.recipe, from_namespace(RunOptions, args))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from bench.run.external import evaluate

    evaluate([Path(p) for p in args.sets], from_namespace(EvaluateOptions, args))
    return 0


def _cmd_regress(args: argparse.Namespace) -> int:
    from bench.reports.regress import load_suite, regress

    entries = suite = load_suite()
    if args.only:
        entries = tuple(e for e in suite if e.recipe in args.only)
        unknown = set(args.only) - {e.recipe for e in suite}
        if unknown:
            suite = ", ".join(e.recipe for e in suite)
            raise UserError(f"--only {' '.join(sorted(unknown))}: not in the suite ({suite})")
    options = from_namespace(RunOptions, args)
    return regress(options, entries, Path(args.baselines), args.record, args.jobs)


def _cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from bench.run.sweep import SweepOptions, sweep

    outcomes = sweep(
        from_namespace(
            SweepOptions,
            args,
            recipes=tuple(args.recipes),
            workers=args.workers or max(1, (os.cpu_count() or 1) // args.threads),
            # absolute: the tasks run in the repository root, or on other machines
            data_root=Path(args.data_root).resolve(),
            out=Path(args.out).resolve(),
        )
    )
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.reports.leaderboard import write_leaderboards
    from bench.run.tracking import Tracker, resolve_tracking_uri

    tracker = None
    if args.ingest or args.tracking_uri:
        tracker = Tracker(resolve_tracking_uri(args.tracking_uri, Path(args.runs)), Path(args.runs))
    for path in write_leaderboards(tracker, Path(args.output)):
        print(f"wrote {path}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from bench.reports.plan import measure, plan_rows, recipes_of, record_rates, render_plan
    from bench.spec.recipes import Recipe, load_recipe, recipe_names

    names = args.recipes or [
        n for n in recipe_names() if isinstance(r := load_recipe(n), Recipe) and r.published
    ]
    folder = Path(args.ledger)
    if args.missing:
        from bench.reports.ledger import read_ledger
        from bench.reports.plan import missing_sets
        from bench.run.options import format_sets

        runs = read_ledger(folder / "runs")
        for recipe in recipes_of(names):
            if recipe.published is None:
                continue
            distil, kept, _ = missing_sets(recipe, runs)
            if args.missing == "kept" and kept:
                records = [str(folder / "runs" / f"{r}.json") for r in dict.fromkeys(kept.values())]
                print(recipe.name, format_sets(tuple(kept)), *records)
            elif args.missing == "distil" and distil:
                print(recipe.name, format_sets(tuple(distil)))
        return 0
    if args.measure:
        for recipe in recipes_of(names):
            if recipe.published is None:
                continue
            try:
                rates = measure(recipe, Path(args.data_root), args.iterations)
            except UserError as exc:
                print(f"{recipe.name}: not measured ({exc})")
                continue
            record_rates(folder / "benchmarks", recipe.name, rates)
            print(f"{recipe.name}: {rates.basis}")
    rows = plan_rows(names, folder / "runs", folder / "benchmarks", args.machine)
    print(render_plan(rows))
    return 0


def _speed(name: str, argv: list[str]) -> int:
    from bench.spec.method import load_method, registered_methods, resolve_target

    method = load_method(name)
    if method.speed_benchmark is None:
        having = [n for n in sorted(registered_methods()) if _has_speed_benchmark(n)]
        raise UserError(f"method {name!r} has no speed benchmark; these have: {', '.join(having)}")
    return resolve_target(method.speed_benchmark)(argv)


def _has_speed_benchmark(name: str) -> bool:
    from bench.spec.method import load_method

    try:
        return load_method(name).speed_benchmark is not None
    except UserError:
        return False


def _forwarded(argv: list[str]):
    """A call that hands its options to a method's own parser: ``speed METHOD ...`` or a
    registered command (``experts ...``); None for the commands parsed here."""
    from bench.spec.method import resolve_target

    if argv and argv[0] in registered_commands():
        return lambda: resolve_target(registered_commands()[argv[0]])(argv[1:])
    if len(argv) > 1 and argv[0] in ("speed", "bench") and not argv[1].startswith("-"):
        return lambda: _speed(argv[1], argv[2:])
    return None


def _includes() -> argparse.ArgumentParser:
    """The ``--include-path`` option of the commands that read recipes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--include-path",
        action="append",
        default=[],
        metavar="DIR",
        help="also read recipes from DIR/*.toml and dataset cards from DIR/datasets/*.toml "
        f"(repeatable; sets ${INCLUDE_PATH_VARIABLE}, which sweep tasks inherit)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench`` argument parser and its subcommands."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("distillbench")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown (not installed)"
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="DistillBench: re-run published dataset-distillation methods on their "
        "papers' protocol and judge whether the published accuracies hold. Commands: list, "
        "methods, validate, schema, reproduce, evaluate, plan, sweep, regress, leaderboard, "
        "speed, and those methods register (experts). README.md and docs/ walk through them.",
    )
    parser.add_argument("--version", action="version", version=f"distillbench {installed}")
    sub = parser.add_subparsers(dest="command", required=True)
    includes = [_includes()]

    p = sub.add_parser(
        "list", parents=includes, help="recipes and the published number each targets"
    )
    p.add_argument(
        "--power",
        action="store_true",
        help="for every recipe and budget, the differences its verdict can resolve",
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "methods",
        help="registered methods (built-in and installed plugins); with a name, its config "
        "fields (type, default, description): the keys of a recipe's [method] table and --set",
    )
    p.add_argument("name", nargs="?", help="a method whose config fields to list")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser(
        "validate",
        parents=includes,
        help="check every recipe (keys, types, budgets) and dataset card without running them; "
        "one line per problem",
    )
    p.add_argument("recipes", nargs="*", help="recipes to check (default: all, and all cards)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "schema", help="write the JSON schemas of recipe, group and dataset-card files"
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder to write them to (default: reproduce/ and datasets/ of the checkout)",
    )
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser(
        "reproduce", parents=includes, help="distil, evaluate, log to MLflow and give a verdict"
    )
    p.add_argument("recipe", help="recipe name (see: python -m bench list)")
    add_options(p, RunOptions)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "evaluate",
        parents=includes,
        help="judge synthetic sets made elsewhere under a recipe's protocol: accuracy, verdict "
        "against the published number and the baselines, logged as source=external",
    )
    p.add_argument(
        "sets",
        nargs="+",
        metavar="SET",
        help="synthetic_set.safetensors, a reference code's res_*.pt result file or images_*.pt "
        "(labels_*.pt beside it; docs/evaluate.md), or a folder of class "
        "folders of PNG/JPEG images; several files (or a file of several sets) are several sets "
        "of one run",
    )
    add_options(p, EvaluateOptions, skip=("checkpoint_every",))
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "regress",
        parents=includes,
        help="re-run the smoke suite and fail on a significant drop against committed baselines",
    )
    p.add_argument(
        "--baselines",
        default=str(LEADERBOARDS_DIR / "regress-smoke.json"),
        help="baseline file (default: leaderboards/regress-smoke.json of the checkout, or of the "
        "working directory when installed)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write this run's accuracies as the new baselines instead of comparing",
    )
    p.add_argument("--only", nargs="+", metavar="RECIPE", help="run only these suite recipes")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run up to N suite entries at once, each in its own process with its share of the "
        "CPU threads (default 1)",
    )
    add_options(p, Location)
    p.set_defaults(func=_cmd_regress)

    from bench.run.sweep import SweepOptions

    p = sub.add_parser(
        "sweep",
        parents=includes,
        help="many reproductions (recipes x seeds) in parallel, locally or on Ray; resumable",
    )
    p.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipes or groups to run")
    # concurrent tasks must not download
    add_options(p, SweepOptions, skip=("download",))
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "leaderboard",
        parents=includes,
        help="tables and plots of every recipe from the run records in leaderboards/runs/",
    )
    p.add_argument(
        "--ingest",
        action="store_true",
        help="first add the finished runs of an MLflow store (--tracking-uri, else the default "
        "store under --runs) to the run records",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store to ingest (implies --ingest; default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///<runs>/mlflow.db)",
    )
    p.add_argument("--runs", default="runs", help="folder of the default store (default: runs)")
    p.add_argument(
        "--output",
        default=str(LEADERBOARDS_DIR),
        help="where to write (default: the checkout's leaderboards/, or ./leaderboards when "
        "installed)",
    )
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser(
        "plan",
        parents=includes,
        help="per published cell: paper-protocol sets done and missing, and the compute the "
        "rest needs on this machine (measured rates) and on a GPU",
    )
    p.add_argument(
        "recipes",
        nargs="*",
        metavar="RECIPE",
        help="recipes or groups (default: every recipe with a published number)",
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="first time the recipes' paper configuration here (a few outer iterations and two "
        "short evaluations, single-threaded) and record the rates in "
        "leaderboards/benchmarks/plan-rates.json",
    )
    p.add_argument(
        "--data-root",
        default="../shared/datasets",
        help="datasets for --measure (stand-in data of the same shape where one is missing; "
        "default: ../shared/datasets)",
    )
    p.add_argument(
        "--ledger",
        default=str(LEADERBOARDS_DIR),
        help="leaderboard folder whose runs/ and benchmarks/ are read and written (default: "
        "the checkout's leaderboards/)",
    )
    p.add_argument(
        "--missing",
        nargs="?",
        const="distil",
        choices=("distil", "kept"),
        help="print only `RECIPE SETS` for each recipe whose paper design lacks sets to distil "
        "(for `sweep RECIPE --budget paper --per-set --sets SETS`); `--missing kept`: "
        "`RECIPE SETS RECORD...` for the sets an older recipe version kept, to evaluate again "
        "(`reproduce RECIPE --budget paper --sets SETS --distilled-from RECORD...`)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=3,
        help="outer iterations --measure times, the first a warm-up (default: 3)",
    )
    p.add_argument(
        "--machine",
        default=None,
        metavar="CPU",
        help="use the rates measured on this CPU model (default: this machine's)",
    )
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser(
        "speed",
        aliases=["bench"],
        help="a method's speed benchmark, side by side with its variants (python -m bench "
        "speed METHOD --help); written to bench-results/<name>-<commit>.json",
    )
    p.add_argument("method", help="a method with a speed benchmark (see: python -m bench methods)")
    p.add_argument("options", nargs="*", help="the benchmark's own options")

    for name, target in registered_commands().items():
        sub.add_parser(name, help=f"registered by {target.split(':')[0]}; see its --help")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0, 1 for invalid recipes, 2/3 for user errors,
    130 after Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    keep_freed_memory()  # before any tensor: half of a DC iteration's CPU time was page faults
    try:
        forwarded = _forwarded(argv)
        if forwarded is not None:
            return forwarded()
        args = build_parser().parse_args(argv)
        add_include_paths(getattr(args, "include_path", ()))
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe is found here, not in the interpreter's shutdown
        return code
    except BrokenPipeError:
        # the reader went away (``bench list | head``): not an error of the suite. Python's
        # recipe (docs: signal, "Note on SIGPIPE"): point stdout at devnull so the final flush
        # stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        fault = explain(exc)  # a full disk, a denied permission, ...: one line; a bug: traceback
        if fault is None:
            raise
        print(f"error: {fault}", file=sys.stderr)
        return fault.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
