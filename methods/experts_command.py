"""``python -m bench experts`` (an entry point of group ``distillbench.commands``): generate
MTT's expert trajectories with progress and an MLflow run (config, provenance, each expert's
test accuracy, the manifest as an artifact)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from bench.api import (
    Tracker,
    as_flat_dict,
    load_card,
    load_real,
    prepare_real,
    provenance_tags,
    resolve_tracking_uri,
)
from distillbench_methods.experts import ExpertConfig, generate_experts, trajectory_folder


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

    from bench.api import (
        Location,
        add_config_arguments,
        add_options,
        config_from_arguments,
        from_namespace,
        pick_device,
    )

    p = argparse.ArgumentParser(
        prog="python -m bench experts",
        description="train and store MTT's expert trajectories (resumable: rerun to continue)",
    )
    add_config_arguments(p, ExpertConfig, required=("dataset",))
    p.add_argument(
        "--zca",
        dest="preprocessing",
        action="store_const",
        const="zca",
        default=argparse.SUPPRESS,
        help="shorthand for --preprocessing zca",
    )
    p.add_argument(
        "--experts-dir", default="experts", help="root folder of trajectories (default: experts)"
    )
    add_options(p, Location)
    args = p.parse_args(argv)
    where = from_namespace(Location, args)
    config = config_from_arguments(ExpertConfig, args)
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
