"""The one path every result takes (``python -m bench reproduce``).

recipe + budget + ``--set`` -> resolved ``RunConfig`` (logged whole)
  -> for each of ``num_exp`` synthetic sets (seed_i derived from the base seed):
       method.distill(real train set, config, seed_i)   [checkpointed, resumable]
       bench.evaluate(synthetic set, real test set, protocol)   [per-network results kept]
  -> bench.stats.verdict(accuracies, published, test, budget)
  -> MLflow: parent run (config, provenance, summary metrics, verdict.json), one nested child
     run per synthetic set (``distill/loss`` per outer iteration, per-network accuracies,
     the synthetic set and its picture).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bench.checkpoint import CheckpointStore
from bench.config import as_flat_dict
from bench.data import RealSet, load_card, load_real
from bench.errors import DivergedError, UserError
from bench.evaluate import evaluate_synthetic_set
from bench.provenance import hardware, provenance_tags
from bench.recipes import Recipe, RecipeGroup, RunConfig, load_recipe, resolve
from bench.seeds import derive_seed
from bench.stats import Verdict, verdict
from bench.synthetic import SyntheticSet, save_grid
from bench.tracking import Tracker, resolve_tracking_uri
from methods import load_method


@dataclass(frozen=True)
class RunOptions:
    """Command-line options of ``reproduce`` (everything that is not the recipe itself)."""

    budget: str = "smoke"
    seed: int = 0
    data_root: Path = Path("../shared/datasets")
    tracking_uri: str | None = None
    out: Path = Path("runs")
    device: str = "auto"
    resume: str | None = None
    set_options: dict | None = None
    download: bool = False
    checkpoint_every: int = 10


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; raises ``UserError`` for unavailable CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return device


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def reproduce(name: str, options: RunOptions) -> list[Verdict]:
    """Run a recipe, or each member of a group recipe; returns the verdict(s)."""
    recipe = load_recipe(name)
    if isinstance(recipe, RecipeGroup):
        if options.resume:
            raise UserError(
                f"{name} is a group; --resume takes the run id of one member "
                f"({', '.join(recipe.members)})"
            )
        print(f"{recipe.name}: {recipe.title} — runs {', '.join(recipe.members)}")
        return [run_recipe(load_recipe(member), options) for member in recipe.members]
    return [run_recipe(recipe, options)]


def run_recipe(recipe: Recipe, options: RunOptions) -> Verdict:
    """Distil, evaluate, judge and log one recipe (see module docstring)."""
    if isinstance(recipe, RecipeGroup):
        raise UserError(f"{recipe.name} is a group recipe; run its members")
    config = resolve(recipe, options.budget, options.seed, options.set_options)
    method = load_method(config.method)
    device = pick_device(options.device)
    card = load_card(config.dataset)
    train = load_real(card, options.data_root, "train", options.download)
    test = load_real(card, options.data_root, "test", options.download)
    out = Path(options.out)
    tracker = Tracker(resolve_tracking_uri(options.tracking_uri, out), out)
    parent = _open_parent_run(tracker, recipe, config, options, device)
    checkpoints = CheckpointStore(out / "checkpoints" / parent, config.config_hash())
    _print_header(recipe, config, parent, tracker.uri, device)

    child = None
    try:
        accuracies: dict[str, list[float]] = {m: [] for m in config.eval.models}
        for index in range(config.eval.num_exp):
            child = _child_run(tracker, parent, index, options.resume is not None)
            result = _one_synthetic_set(
                index,
                config,
                method,
                train,
                test,
                device,
                tracker,
                child,
                checkpoints,
                out / "sets" / parent,
                options,
            )
            for model, values in result.items():
                accuracies[model] += values
            tracker.set_status(child, "FINISHED")
            child = None
        outcome = _judge_and_log(recipe, config, accuracies, tracker, parent, out / "sets" / parent)
        tracker.set_status(parent, "FINISHED")
        return outcome
    except BaseException as exc:
        if isinstance(exc, DivergedError) and child is not None:
            folder = out / "sets" / parent / "last_good"
            _log_synthetic_set(exc.last_good, card, tracker, child, folder)
        for run_id in (child, parent):
            if run_id is not None:
                tracker.set_status(run_id, "FAILED")
        tqdm.write(
            f"run {parent} marked FAILED; its artifacts and checkpoints are kept. "
            f"Continue it with: python -m bench reproduce {recipe.name} "
            f"--budget {config.budget} --seed {config.seed} --resume {parent}"
            + "".join(f" --set {o}" for o in config.overrides)
        )
        raise


def _open_parent_run(
    tracker: Tracker, recipe: Recipe, config: RunConfig, options: RunOptions, device: torch.device
) -> str:
    tags = {
        "recipe": recipe.name,
        "recipe_version": str(recipe.version),
        "budget": config.budget,
        "seed": str(config.seed),
        "method": config.method,
        "dataset": config.dataset,
        "ipc": str(config.ipc),
        "config_hash": config.config_hash(),
        "overrides": " ".join(config.overrides),
        "comparable": str(config.budget == "paper" and not config.overrides).lower(),
        **provenance_tags(device),
    }
    if options.resume:
        run = tracker.get_run(options.resume)
        if run.data.tags.get("mlflow.parentRunId"):
            raise UserError(
                f"{options.resume} is a synthetic-set run; resume its parent "
                f"{run.data.tags['mlflow.parentRunId']}"
            )
        if run.data.tags.get("config_hash") != config.config_hash():
            raise UserError(
                f"run {options.resume} was started as {run.data.tags.get('recipe')} "
                f"budget={run.data.tags.get('budget')} seed={run.data.tags.get('seed')} "
                f"(config {run.data.tags.get('config_hash')}); resume it with the same recipe, "
                f"--budget, --seed and --set options (this command resolves to "
                f"{config.config_hash()})"
            )
        if run.info.status == "FINISHED":
            raise UserError(f"run {options.resume} already FINISHED; nothing to resume")
        tracker.set_status(options.resume, "RUNNING")
        tracker.set_tags(
            options.resume, {"resumed_on": tags["hardware"], "resumed_commit": tags["git_commit"]}
        )
        return options.resume
    run_id = tracker.start_run(f"{recipe.name}/{config.budget}/seed{config.seed}", tags)
    params = {
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "budget": config.budget,
        "seed": config.seed,
        "dataset": config.dataset,
        "ipc": config.ipc,
        **as_flat_dict(config.method_config, "method"),
        **as_flat_dict(config.eval, "eval"),
    }
    tracker.log_params(run_id, params)
    folder = Path(options.out) / "sets" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config.as_dict(), indent=2))
    tracker.log_artifact(run_id, folder / "config.json")
    return run_id


def _print_header(recipe: Recipe, config: RunConfig, run_id: str, uri: str, device) -> None:
    budget = recipe.budgets.get(config.budget)
    what = budget.description if budget else "the paper's protocol"
    pub = recipe.published
    std = f" ± {pub.std}" if pub.std is not None else ""
    ev = config.eval
    print(f"{recipe.name} (v{recipe.version}): {recipe.title}")
    print(f"  budget   : {config.budget} — {what}")
    if config.overrides:
        print(f"  overrides: {' '.join(config.overrides)}")
    print(f"  published: {pub.mean}{std} [{pub.source}]")
    print(
        f"  work     : {ev.num_exp} synthetic set(s) x "
        f"{config.method_config.iterations} outer iterations; "
        f"{ev.num_exp * ev.models_per_set} network(s) x {ev.epochs + 1} epochs"
    )
    print(f"  hardware : {hardware(device)}")
    print(f"  run      : {run_id} in {uri} (config {config.config_hash()})")


def _child_run(tracker: Tracker, parent: str, index: int, resuming: bool) -> str:
    if resuming:
        for run in tracker.children(parent):
            if run.data.tags.get("set_index") == str(index):
                tracker.set_status(run.info.run_id, "RUNNING")
                return run.info.run_id
    return tracker.start_run(f"set{index}", {"set_index": str(index)}, parent_id=parent)


def _one_synthetic_set(
    index: int,
    config: RunConfig,
    method,
    train: RealSet,
    test: RealSet,
    device: torch.device,
    tracker: Tracker,
    child: str,
    checkpoints: CheckpointStore,
    folder: Path,
    options: RunOptions,
) -> dict[str, list[float]]:
    """Distil (or restore) synthetic set ``index``, then evaluate it; returns its accuracies."""
    card = train.card
    set_seed = derive_seed(config.seed, index)
    image_shape = (card.num_classes * config.ipc, card.channels, *card.image_size)
    saved = checkpoints.load(index, image_shape) or {}
    state = {"distill": saved.get("distill"), "accuracies": saved.get("accuracies", {})}
    iterations = config.method_config.iterations
    start = state["distill"]["iteration"] if state["distill"] else 0
    label = f"set {index + 1}/{config.eval.num_exp} "

    if start < iterations:
        started = time.perf_counter()
        with tqdm(
            total=iterations,
            initial=start,
            desc=f"{label}distill",
            unit="it",
            dynamic_ncols=True,
            mininterval=1.0,
        ) as bar:

            def after_iteration(it, metrics, get_state):
                tracker.log_metrics(child, metrics, step=it)
                bar.set_postfix(loss=f"{metrics['distill/loss']:.3f}", refresh=False)
                bar.update(1)
                if it == start and index == 0:
                    per_it = time.perf_counter() - started
                    remaining = iterations * config.eval.num_exp - it - 1
                    tqdm.write(
                        f"estimate: distillation {per_it:.2f} s/it x {remaining} "
                        f"iterations left ≈ {_duration(per_it * remaining)}"
                    )
                if (it + 1) % options.checkpoint_every == 0 or it + 1 == iterations:
                    state["distill"] = get_state()
                    checkpoints.save(index, state)

            synset = method.distill(
                train,
                config.ipc,
                config.method_config,
                set_seed,
                device,
                resume=state["distill"],
                after_iteration=after_iteration,
            )
    else:
        synset = SyntheticSet(
            state["distill"]["images"],
            torch.arange(card.num_classes).repeat_interleave(config.ipc),
            config.method,
            card.name,
            config.ipc,
            set_seed,
            "",
        )
    synset = dataclasses.replace(synset, config_hash=config.config_hash())
    _log_synthetic_set(synset, card, tracker, child, folder / f"set{index}")

    first_model = [time.perf_counter()]

    def on_result(model: str, k: int, accuracy: float) -> None:
        state["accuracies"].setdefault(model, []).append(accuracy)
        checkpoints.save(index, state)
        tracker.log_metrics(child, {f"eval/{model}/model_acc": accuracy}, step=k)
        if first_model and index == 0:
            per_model = time.perf_counter() - first_model.pop()
            left = config.eval.num_exp * config.eval.models_per_set - 1
            tqdm.write(
                f"estimate: evaluation {per_model:.1f} s/network x {left} networks "
                f"left ≈ {_duration(per_model * left)}"
            )

    result = evaluate_synthetic_set(
        synset,
        test,
        config.eval,
        derive_seed(set_seed, 1),
        device,
        done=state["accuracies"],
        on_result=on_result,
        label=label,
    )
    tracker.log_metrics(child, {f"eval/{m}/acc": float(np.mean(v)) for m, v in result.items()})
    return result


def _log_synthetic_set(
    synset: SyntheticSet, card, tracker: Tracker, run_id: str, folder: Path
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tracker.log_artifact(run_id, synset.save(folder / "synthetic_set.safetensors", card))
    tracker.log_artifact(
        run_id, save_grid(synset.images, synset.labels, card, folder / "synthetic_grid.png")
    )


def _judge_and_log(
    recipe: Recipe,
    config: RunConfig,
    accuracies: dict[str, list[float]],
    tracker: Tracker,
    parent: str,
    folder: Path,
) -> Verdict:
    summary = {}
    for model, values in accuracies.items():
        std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        summary[f"eval/{model}/acc"] = float(np.mean(values))
        summary[f"eval/{model}/acc_std"] = std
        summary[f"eval/{model}/n"] = len(values)
    tracker.log_metrics(parent, {k: v for k, v in summary.items() if not np.isnan(v)})
    primary = config.eval.models[0]
    outcome = verdict(
        accuracies[primary],
        recipe.published,
        recipe.margin,
        recipe.alpha,
        config.budget,
        config.overrides,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accuracies.json").write_text(json.dumps(accuracies, indent=2))
    (folder / "verdict.json").write_text(
        json.dumps(
            {
                "recipe": recipe.name,
                "recipe_version": recipe.version,
                "model": primary,
                **outcome.as_dict(),
            },
            indent=2,
        )
    )
    tracker.log_artifact(parent, folder / "accuracies.json")
    tracker.log_artifact(parent, folder / "verdict.json")
    tracker.set_tags(parent, {"verdict": outcome.verdict})
    print(f"\n{recipe.name} [{config.budget}] {primary}: {outcome.summary()}")
    return outcome
