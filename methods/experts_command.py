"""``python -m bench experts`` (an entry point of group ``distillbench.commands``): generate
MTT's expert trajectories with progress and an MLflow run (config, provenance, each expert's
test accuracy, the manifest as an artifact)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from bench.api import (
    PREPROCESSING,
    Tracker,
    as_flat_dict,
    load_card,
    load_real,
    prepare_real,
    provenance_tags,
    resolve_tracking_uri,
)
from methods.experts import ExpertConfig, generate_experts, trajectory_folder


def make_experts(
    config: ExpertConfig,
    experts_dir: Path,
    data_root: Path,
    device,
    out: Path,
    tracking_uri: str | None = None,
    download: bool = False,
) -> Path:
    """Load and preprocess ``config.dataset`` as MTT's distillation will, then train (or finish)
    the experts; returns the trajectory folder.

    Raises:
        UserError: missing data, or a folder holding experts made another way.
    """
    card = load_card(config.dataset)
    train = load_real(card, data_root, "train", download)
    test = load_real(card, data_root, "test", download)
    # the same preprocessing code as the distillation, so the two cannot drift apart
    train, test = prepare_real(train, test, config)
    tracker = Tracker(resolve_tracking_uri(tracking_uri, out), out)
    folder = trajectory_folder(experts_dir, config)
    run = tracker.start_run(
        f"experts/{config.folder_name}",
        {"kind": "experts", "folder": str(folder), **provenance_tags(device)},
    )
    tracker.log_params(run, as_flat_dict(config, "experts"))
    print(
        f"experts: {config.num_experts} x {config.epochs} epochs of {config.model} on "
        f"{card.display_name} (preprocessing {config.preprocessing}, batch {config.batch_train}, "
        f"augmentation {config.augmentation}) -> {folder}"
    )
    try:
        with tqdm(
            total=config.num_experts * config.epochs, desc="experts", unit="epoch", mininterval=1.0
        ) as bar:

            def progress(expert: int, epoch: int, loss: float) -> None:
                tracker.log_metrics(run, {f"expert{expert}/train_loss": loss}, step=epoch)
                bar.set_postfix(expert=expert, loss=f"{loss:.3f}", refresh=False)
                bar.n = expert * config.epochs + epoch + 1
                bar.refresh()

            generate_experts(train, test, config, experts_dir, device, progress)
    except BaseException:
        tracker.set_status(run, "FAILED")
        print(f"interrupted: run the same command again to continue where it stopped ({folder})")
        raise
    manifest = folder / "manifest.json"
    for entry in json.loads(manifest.read_text())["experts"]:
        tracker.log_metrics(run, {"expert/test_acc": entry["test_accuracy"]}, step=entry["index"])
    tracker.log_artifact(run, manifest)
    tracker.set_status(run, "FINISHED")
    return folder


def main(argv: list[str]) -> int:
    """``python -m bench experts [options]``: parse the options and run ``make_experts``."""
    import argparse

    from bench.api import Location, add_options, from_namespace, pick_device

    p = argparse.ArgumentParser(
        prog="python -m bench experts",
        description="train and store MTT's expert trajectories (resumable: rerun to continue)",
    )
    p.add_argument("--dataset", required=True, help="dataset card, e.g. cifar10-jpeg or eurosat")
    p.add_argument("--model", default="ConvNet", help="architecture (default: ConvNet)")
    p.add_argument(
        "--preprocessing",
        choices=PREPROCESSING,
        default="zca",
        help="normalise (card mean/std), zca (whitened, MTT's CIFAR protocol) or none (raw "
        "[0, 1] pixels, the EuroSAT work's experts); default: zca",
    )
    p.add_argument(
        "--zca",
        dest="preprocessing",
        action="store_const",
        const="zca",
        help="shorthand for --preprocessing zca",
    )
    p.add_argument(
        "--batch-train", type=int, default=256, help="mini-batch size (default: 256, MTT's)"
    )
    p.add_argument(
        "--augmentation",
        choices=("dsa", "none"),
        default="dsa",
        help="dsa (MTT's) or none (the EuroSAT work's); default: dsa",
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
    add_options(p, Location)
    args = p.parse_args(argv)
    where = from_namespace(Location, args)
    config = ExpertConfig(
        dataset=args.dataset,
        model=args.model,
        preprocessing=args.preprocessing,
        num_experts=args.num_experts,
        epochs=args.epochs,
        images_per_class=args.images_per_class,
        batch_train=args.batch_train,
        augmentation=args.augmentation,
        seed=args.seed,
    )
    folder = make_experts(
        config,
        Path(args.experts_dir),
        where.data_root,
        pick_device(where.device),
        where.out,
        where.tracking_uri,
        where.download,
    )
    print(f"expert trajectories: {folder}")
    return 0
