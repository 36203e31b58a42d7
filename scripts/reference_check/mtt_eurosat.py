"""Differential check of MTT as the EuroSAT work runs it (recipe ``mtt-eurosat-ipc1``): the
suite's ``distillbench_methods.mtt.distill`` and the EuroSAT work's own student loop
(``distillation.py`` lines 317-420 at 4b8bf43, the same loop as MTT's ``distill.py``, driven by
``mtt.py``'s ``reference_distill``) with its own ``get_network`` (ConvNet-3 on 64x64 RGB),
``ReparamModule`` and ``DiffAugment`` (whose body is commented out: it returns its input), from
the same initial synthetic images, expert, start epochs and mini-batch order. Per iteration it
compares the trajectory-matching loss, the synthetic images and the learned learning rate.

    python scripts/reference_check/mtt_eurosat.py --reference DIR
        [--iterations 5 --syn-steps 10] [--out leaderboards/fidelity]

``--reference`` is a checkout of julius-lautz/imp_dataset_distillation@4b8bf43 (its
``helper_functions`` imports kornia and pandas). No EuroSAT copy is needed (none is available
offline): the check writes a small one in the exact on-disk layout (``eurosat/2750/<Class>/
<Class>_<k>.jpg``, random 64x64 pixels, 15 per class; the per-step agreement does not depend on
the pixels) and trains one expert of 2 epochs on it the recipe's way (raw [0, 1] pixels, batch
128, no augmentation), while the distillation sees normalised pixels, as the EuroSAT work's code
does. Writes ``<out>/mtt-eurosat-ipc1-<commit>.json`` and rewrites ``leaderboards/fidelity.md``.

Shims: those of ``mtt.py`` (the loop re-stated as a driver on the suite's draws; both read the
suite's expert file), and the EuroSAT work's ``wandb`` logging and evaluation left out of the
loop (neither touches the synthetic set or the learned learning rate). A second side runs the
reference with one more shim: its loss, ``(mean distance / P) / (mean distance / P)``, taken
as the suite takes it, ``sum distance / sum distance`` (the same number, other rounding), to
show whether rounding is all that differs.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch
from mtt import SHIMS, compare, reference_distill, suite_distill  # this folder's MTT check

from bench.api import load_card, load_real, pick_device, prepare_real, write_record
from bench.reports.fidelity import check_parser, import_reference, write_table
from bench.spec.recipes import load_recipe, resolve
from distillbench_methods import mtt
from distillbench_methods.experts import generate_experts

REFERENCE = "julius-lautz/imp_dataset_distillation@4b8bf43"
PER_CLASS = 15


def write_small_eurosat(root: Path, classes: list[str]) -> int:
    """``PER_CLASS`` random 64x64 RGB JPEGs per class in torchvision's EuroSAT layout under
    ``root``; returns the image count."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        folder = root / "eurosat" / "2750" / name
        folder.mkdir(parents=True)
        for k in range(1, PER_CLASS + 1):
            pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{k}.jpg", quality=90)
    return PER_CLASS * len(classes)


def compare_sides(ref, args, work: Path, device) -> dict[str, list[dict]]:
    """Both sides of the check (``"faithful"`` and the shim's) on a small EuroSAT copy and one
    expert written under ``work``."""
    card = load_card("eurosat")
    n = write_small_eurosat(work / "data", card.classes)
    card = dataclasses.replace(card, splits={"train": n - n // 10, "test": n // 10})
    train, test = (load_real(card, work / "data", split) for split in ("train", "test"))
    # mtt-eurosat-ipc1's paper settings (preprocessing, experts' training, no DSA, step sizes)
    # with fewer student steps, on one expert of 2 epochs: start 0, target 1
    recipe = resolve(load_recipe("mtt-eurosat-ipc1"), "paper", args.seed).method_config
    config = dataclasses.replace(
        recipe,
        syn_steps=args.syn_steps,
        expert_epochs=1,
        max_start_epoch=1,
        num_experts=1,
        expert_train_epochs=2,
        experts_dir=str(work / "experts"),
    )
    expert_config = config.experts("eurosat")
    generate_experts(
        *prepare_real(train, test, expert_config), expert_config, work / "experts", device
    )
    real, _ = mtt.METHOD.prepare_real(train, test, config)
    experts = mtt.load_experts(real, config)
    real_by_class = [real.images[real.labels == c] for c in range(card.num_classes)]
    start = mtt.initial_synthetic_images(real_by_class, 1, config, args.seed)
    labels = torch.arange(card.num_classes)

    # distillation.py: args.dsa is "True" by default, so DiffAugment is called (a no-op), and
    # the distances are mean-reduced before the division by the parameter count. The second
    # side takes the reference's ratio as the suite does (a shim): what differs is then rounding
    def reference_steps(reduction):
        steps = reference_distill(
            ref, experts, start, labels, config, args.seed, args.iterations, card, True, reduction
        )
        return list(steps)

    suite_steps = suite_distill(real, config, args.seed, args.iterations, device)
    return {
        "faithful": compare(reference_steps("mean"), suite_steps),
        "faithful; shim: the reference's ratio unscaled": compare(
            reference_steps("ratio"), suite_steps
        ),
    }


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--syn-steps", type=int, default=10)
    args = parser.parse_args()

    ref = import_reference(
        args.reference, utils="helper_functions", reparam_module="reparam_module"
    )
    device = pick_device("cpu")
    with tempfile.TemporaryDirectory(prefix="mtt-eurosat-check-") as work:
        sides = compare_sides(ref, args, Path(work), device)
    worst = max(r["images_rel_diff"] for r in sides["faithful"])
    print(
        f"mtt-eurosat ipc 1: {args.iterations} iterations of {args.syn_steps} student steps, "
        f"worst image diff {worst:.2e}"
    )
    write_record(
        args.out,
        "mtt-eurosat-ipc1",
        device,
        family="mtt",  # the method: bench list shows the check beside mtt-eurosat-ipc1
        recipe="mtt-eurosat-ipc1",
        reference=REFERENCE,
        shims=[
            *SHIMS,
            "wandb logging and the in-loop evaluation left out (neither changes the set)",
        ],
        data=f"a small EuroSAT copy in its on-disk layout (random pixels, {PER_CLASS} per class)",
        ipc=1,
        iterations=args.iterations,
        syn_steps=args.syn_steps,
        seed=args.seed,
        sides=sides,
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
