"""Command line: ``python -m bench {list, validate, reproduce, sweep, regress, leaderboard,
experts, bench}``.

User errors (unknown recipe or key, missing data, bad shapes, corrupt checkpoints, NaN loss)
print one ``error: ...`` line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import UserError
from bench.paths import LEADERBOARDS_DIR


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.recipes import (
        Recipe,
        format_published,
        format_source,
        ipc_label,
        load_recipe,
        recipe_names,
    )

    rows = []
    for name in recipe_names():
        recipe = load_recipe(name)
        if isinstance(recipe, Recipe):
            rows.append(
                [
                    name,
                    recipe.method,
                    recipe.dataset,
                    ipc_label(recipe.ipc),
                    format_published(recipe),
                    format_source(recipe),
                ]
            )
        else:
            members = recipe.members
            shown = ", ".join(members[:3]) + (
                f", ... ({len(members)} recipes)" if len(members) > 3 else ""
            )
            rows.append([name, "group", "", "", "", "runs " + shown])
    print(tabulate(rows, headers=["recipe", "method", "dataset", "ipc", "published (%)", "source"]))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from bench.data import load_card
    from bench.recipes import BUDGETS, Recipe, load_recipe, recipe_names, resolve

    names = args.recipes or recipe_names()
    failures = 0
    for name in names:
        try:
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
            print(f"ok      {name}")
        except UserError as exc:
            failures += 1
            print(f"FAILED  {name}: {exc}")
    print(f"{len(names) - failures} of {len(names)} recipe(s) valid")
    return 1 if failures else 0


def _run_options(args: argparse.Namespace, **more):
    from bench.runner import RunOptions

    return RunOptions(
        data_root=Path(args.data_root),
        tracking_uri=args.tracking_uri,
        out=Path(args.out),
        device=args.device,
        download=args.download,
        **more,
    )


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from bench.config import parse_set_options
    from bench.runner import reproduce

    if args.checkpoint_every < 1:
        raise UserError("--checkpoint-every must be at least 1")
    options = _run_options(
        args,
        budget=args.budget,
        seed=args.seed,
        resume=args.resume,
        set_options=parse_set_options(args.set),
        checkpoint_every=args.checkpoint_every,
        dataset=args.dataset,
        eval_models=tuple(args.eval_models),
    )
    reproduce(args.recipe, options)
    return 0


def _cmd_regress(args: argparse.Namespace) -> int:
    from bench.regress import SUITE, regress

    entries = SUITE
    if args.only:
        entries = tuple(e for e in SUITE if e.recipe in args.only)
        unknown = set(args.only) - {e.recipe for e in SUITE}
        if unknown:
            suite = ", ".join(e.recipe for e in SUITE)
            raise UserError(f"--only {' '.join(sorted(unknown))}: not in the suite ({suite})")
    return regress(_run_options(args), entries, Path(args.baselines), args.record)


def _cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from bench.sweep import SweepOptions, sweep

    workers = args.workers or max(1, (os.cpu_count() or 1) // args.threads)
    outcomes = sweep(
        SweepOptions(
            recipes=tuple(args.recipes),
            seeds=tuple(args.seeds),
            budget=args.budget,
            set_items=tuple(args.set),
            dataset=args.dataset,
            eval_models=tuple(args.eval_models),
            # absolute: the tasks run in the repository root, or on other machines
            data_root=Path(args.data_root).resolve(),
            out=Path(args.out).resolve(),
            tracking_uri=args.tracking_uri,
            device=args.device,
            executor=args.executor,
            workers=workers,
            threads=args.threads,
            ray_address=args.ray_address,
            gpus=args.gpus,
            retries=args.retries,
            checkpoint_every=args.checkpoint_every,
        )
    )
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.leaderboard import write_leaderboards
    from bench.tracking import Tracker, resolve_tracking_uri

    tracker = Tracker(resolve_tracking_uri(args.tracking_uri, Path(args.runs)), Path(args.runs))
    for path in write_leaderboards(tracker, Path(args.output)):
        print(f"wrote {path}")
    return 0


def _cmd_experts(args: argparse.Namespace) -> int:
    from bench.experts import make_experts
    from bench.runner import pick_device
    from methods.experts import ExpertConfig

    config = ExpertConfig(
        dataset=args.dataset,
        model=args.model,
        zca=args.zca,
        num_experts=args.num_experts,
        epochs=args.epochs,
        images_per_class=args.images_per_class,
        seed=args.seed,
    )
    folder = make_experts(
        config,
        Path(args.experts_dir),
        Path(args.data_root),
        pick_device(args.device),
        Path(args.out),
        args.tracking_uri,
        args.download,
    )
    print(f"expert trajectories: {folder}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.method == "gtn":
        from bench.benchmark_gtn import run_gtn_benchmark
        from bench.runner import pick_device

        run_gtn_benchmark(
            tuple(args.inner_steps), args.iterations, pick_device(args.device), Path(args.out)
        )
        return 0
    if args.method == "mtt":
        from bench.benchmark_mtt import run_mtt_benchmark
        from bench.runner import pick_device

        run_mtt_benchmark(
            tuple(args.ipc),
            tuple(args.syn_steps),
            (None, *args.batch_syn),
            args.iterations,
            pick_device(args.device),
            Path(args.out),
        )
        return 0
    from bench.benchmark import run_benchmark

    run_benchmark(
        args.method,
        Path(args.data_root),
        Path(args.out),
        args.device,
        ipcs=tuple(args.ipc),
        iterations=args.iterations,
        epochs=args.epochs,
        networks=args.networks,
        variants=None if args.variants is None else tuple(args.variants),
    )
    return 0


def _add_run_arguments(p: argparse.ArgumentParser, download: bool = True) -> None:
    """Where data, tracking and outputs live, and the device: shared by reproduce, regress
    and sweep (whose concurrent tasks must not download)."""
    p.add_argument(
        "--data-root",
        default="../shared/datasets",
        help="folder holding the datasets in torchvision layout (default: ../shared/datasets)",
    )
    if download:
        p.add_argument(
            "--download",
            action="store_true",
            help="let torchvision download missing data (needs network)",
        )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<out>/mlflow.db)",
    )
    p.add_argument(
        "--out",
        default="runs",
        help="folder for the default MLflow store, artifacts and checkpoints (default: runs)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """How a recipe is run: budget, overrides, data copy, extra architectures, checkpoints."""
    p.add_argument(
        "--budget",
        choices=("smoke", "reduced", "paper"),
        default="smoke",
        help="paper: the paper's protocol; reduced/smoke: the recipe's smaller "
        "budgets, never compared with the paper (default: smoke)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set method.lr_img=0.05 or "
        "--set eval.num_eval=5 (repeatable; recorded with the run)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        metavar="K",
        help="checkpoint the synthetic set every K outer iterations (default: 10)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="CARD",
        help="run on another copy of the recipe's dataset, e.g. cifar10-jpeg (its results are "
        "labelled as that copy and never compared with the paper)",
    )
    p.add_argument(
        "--eval-models",
        nargs="+",
        default=[],
        metavar="ARCH",
        help="also evaluate each set on these architectures (DC Table 2), e.g. MLP LeNet "
        "AlexNet VGG11 ResNet18; logged as eval/<arch>/acc",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench`` argument parser and its subcommands."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="recipes and the published number each targets")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "validate", help="check every recipe (keys, types, budgets) without running it"
    )
    p.add_argument("recipes", nargs="*", help="recipes to check (default: all)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("reproduce", help="distil, evaluate, log to MLflow and give a verdict")
    p.add_argument("recipe", help="recipe name (see: python -m bench list)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the run (default: 0)")
    _add_recipe_arguments(p)
    _add_run_arguments(p)
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        default=None,
        help="continue a killed or failed run from its checkpoints",
    )
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "regress",
        help="re-run the smoke suite and fail on a significant drop against committed baselines",
    )
    p.add_argument(
        "--baselines",
        default=str(LEADERBOARDS_DIR / "regress-smoke.json"),
        help="baseline file (default: leaderboards/regress-smoke.json)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write this run's accuracies as the new baselines instead of comparing",
    )
    p.add_argument("--only", nargs="+", metavar="RECIPE", help="run only these suite recipes")
    _add_run_arguments(p)
    p.set_defaults(func=_cmd_regress)

    p = sub.add_parser(
        "sweep",
        help="many reproductions (recipes x seeds) in parallel, locally or on Ray; resumable",
    )
    p.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipes or groups to run")
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="base seeds, one run each (default: 0)"
    )
    _add_recipe_arguments(p)
    _add_run_arguments(p, download=False)
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: processes on this machine; ray: Ray tasks (default: local)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="tasks at a time (default: CPU cores // --threads; with --ray-address, as many "
        "as the cluster fits)",
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads per task (default: 1)")
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join this Ray cluster (e.g. ray://head:10001 or head:6379); default: start Ray "
        "here. A cluster needs --tracking-uri of an MLflow server",
    )
    p.add_argument(
        "--gpus",
        type=float,
        default=0.0,
        help="with --executor ray: GPUs reserved per task, e.g. 1 or 0.5 (default: 0)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times a failed task is continued from its checkpoints (default: 1)",
    )
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "leaderboard", help="tables and plots of every recipe from the runs in an MLflow store"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store to read (default: $MLFLOW_TRACKING_URI, else sqlite:///<runs>/mlflow.db)",
    )
    p.add_argument("--runs", default="runs", help="folder of the default store (default: runs)")
    p.add_argument(
        "--output", default=str(LEADERBOARDS_DIR), help="where to write (default: leaderboards/)"
    )
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser(
        "experts",
        help="train and store MTT's expert trajectories (resumable: rerun to continue)",
    )
    p.add_argument("--dataset", required=True, help="dataset card, e.g. cifar10-jpeg or eurosat")
    p.add_argument("--model", default="ConvNet", help="architecture (default: ConvNet)")
    p.add_argument(
        "--zca",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ZCA-whiten the data as the distillation will (default: --zca)",
    )
    p.add_argument("--num-experts", type=int, default=100, help="experts (default: 100)")
    p.add_argument("--epochs", type=int, default=50, help="epochs per expert (default: 50)")
    p.add_argument(
        "--images-per-class",
        type=int,
        default=None,
        help="train on the first N images of each class (reduced budgets; default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument(
        "--experts-dir", default="experts", help="root folder of trajectories (default: experts)"
    )
    _add_run_arguments(p)
    p.set_defaults(func=_cmd_experts)

    p = sub.add_parser(
        "bench",
        help="benchmark a method: gm (outer iterations/s, evaluation epochs/s, peak memory), "
        "mtt (s/iteration and peak memory per syn_steps and batch_syn) or gtn (GTN+GM, GTN+IFT "
        "and unrolled GTN side by side: s/iteration, peak and autograd memory)",
    )
    p.add_argument("method", choices=("gm", "mtt", "gtn"))
    p.add_argument(
        "--inner-steps",
        type=int,
        nargs="+",
        default=[5, 10, 20],
        help="gtn: learner steps per generator update (default: 5 10 20; the paper's is 10)",
    )
    p.add_argument(
        "--syn-steps",
        type=int,
        nargs="+",
        default=[10, 20, 30, 50],
        help="mtt: unrolled student steps per iteration (default: 10 20 30 50)",
    )
    p.add_argument(
        "--batch-syn",
        type=int,
        nargs="*",
        default=[],
        help="mtt: smaller synthetic batches per step, besides all images (default: none)",
    )
    p.add_argument(
        "--ipc",
        type=int,
        nargs="+",
        default=[1],
        help="ipc values (default: 1; an ipc-10 outer iteration takes minutes on a CPU)",
    )
    p.add_argument(
        "--variants",
        nargs="*",
        default=None,
        metavar="VARIANT",
        help="fast variants of the distillation loop timed against the plain one: "
        "channels_last, compile, batched, bf16 (default: all)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=3,
        help="outer iterations timed per ipc (gtn: per variant, after one warm-up)",
    )
    p.add_argument("--epochs", type=int, default=20, help="evaluation epochs timed per ipc")
    p.add_argument(
        "--networks",
        type=int,
        default=20,
        help="networks trained one after another vs together (default: 20, DC's per set)",
    )
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--out", default="bench-results", help="folder for the JSON results")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0, 1 for invalid recipes, 2/3 for user errors,
    130 after Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
