"""Differential check of DSA (differentiable siamese augmentation): the MTT reference code's own
``DiffAugment`` and the suite's ``bench.data.dsa.dsa_augment`` on the same batches of real
CIFAR-10 images, from the same random stream, compared pixel for pixel.

    python scripts/reference_check/dsa.py --reference DIR [--batches 60 --batch 256]
        [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--reference`` is a checkout of GeorgeCazenavette/mtt-distillation@50dccea (the DC reference's
``DiffAugment`` is the same code). With ``seed=-1`` (MTT's per-call mode) the reference draws
from torch's global RNG; the check seeds it with ``torch.manual_seed(k)`` and gives the suite a
``torch.Generator`` seeded with the same ``k``, so both draw the same numbers if they make the
same calls in the same order, which is what the suite claims. Per batch it records which part of
the strategy was drawn and the largest difference. Writes ``<out>/dsa-<commit>.json`` and rewrites
``leaderboards/fidelity.md``. The data are the CIFAR-10 JPEG copy, normalised.
"""

from __future__ import annotations

import torch

from bench.api import dsa_augment, load_card, load_real, pick_device, write_record
from bench.reports.fidelity import check_parser, import_reference, write_table

REFERENCE = "GeorgeCazenavette/mtt-distillation@50dccea"
STRATEGY = "color_crop_cutout_flip_scale_rotate"
SHIMS = [
    "the reference's global torch RNG seeded per batch; the suite's generator with the same seed"
]


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    utils = import_reference(args.reference, utils="utils").utils
    device = pick_device("cpu")
    real = load_real(load_card("cifar10-jpeg"), args.data_root, "train")
    order = torch.randperm(len(real.images), generator=torch.Generator().manual_seed(args.seed))
    steps = []
    for k in range(args.batches):
        images = real.images[order[k * args.batch : (k + 1) * args.batch]]
        seed = args.seed * 1000 + k
        torch.manual_seed(seed)
        reference = utils.DiffAugment(images.clone(), STRATEGY, param=utils.ParamDiffAug())
        suite = dsa_augment(images, torch.Generator().manual_seed(seed), STRATEGY)
        torch.manual_seed(seed)  # the part the reference drew: its first draw
        part = STRATEGY.split("_")[int(torch.randint(0, 6, size=(1,)).item())]
        diff = (suite - reference).abs()
        steps.append(
            {
                "batch": k,
                "part": part,
                "images_max_abs_diff": float(diff.max()),
                "images_rel_diff": float(diff.max() / reference.abs().max()),
            }
        )
    worst = max(s["images_rel_diff"] for s in steps)
    parts = sorted({s["part"] for s in steps})
    print(
        f"dsa: {args.batches} batches of {args.batch} ({', '.join(parts)}), worst diff {worst:.2e}"
    )
    write_record(
        args.out,
        "dsa",
        device,
        family="augmentation: DSA",
        recipe="every recipe with method.dsa or eval.augmentation = dsa (MTT)",
        reference=REFERENCE,
        shims=SHIMS,
        unit=f"batches of {args.batch}",
        strategy=STRATEGY,
        data="cifar10-jpeg",
        seed=args.seed,
        sides={"faithful": steps},
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
