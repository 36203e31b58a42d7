"""Differential check of the evaluation's DC augmentation: the DC reference code's own
``utils.augment`` and the suite's ``bench.data.augment.apply_dc``, on the same batches of real
MNIST with the same parameters, compared pixel for pixel.

    python scripts/reference_check/augment.py --reference DIR [--batches 40 --batch 256]
        [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--reference`` is a checkout of VICO-UoE/DatasetCondensation@53f63a6 (kghandour/dd3d@d3dc89f's
``mnist_distill.augment`` is the same function). The reference draws from numpy's global RNG;
the check seeds it per batch, runs the reference's ``augment`` and, from the same seed, replays
the reference's calls in its order (per image: ``permutation(augs)[0]``, then the chosen
transform's draws) to get the parameters that the suite's ``apply_dc`` is given. The suite
draws its own parameters from a torch generator with the same distributions
(``tests/test_augment.py`` tests them against the exact probabilities). Writes
``<out>/dc-augment-<commit>.json`` and rewrites ``leaderboards/fidelity.md``.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.api import load_card, load_real, pick_device, write_record
from bench.data.augment import STRATEGIES, DCDraws, apply_dc
from bench.reports.fidelity import check_parser, import_reference, write_table

REFERENCE = "VICO-UoE/DatasetCondensation@53f63a6"
PARAMS = {"crop": 4, "scale": 0.2, "rotate": 45, "noise": 0.001, "strategy": "crop_scale_rotate"}
SHIMS = ["the reference's draws replayed from the same numpy seed to give the suite's parameters"]


def replay(seed: int, count: int, height: int) -> DCDraws:
    """The parameters the reference's ``augment`` draws for ``count`` images after
    ``np.random.seed(seed)`` (utils.py lines 413-424 and the transforms' own draws)."""
    np.random.seed(seed)
    augs = PARAMS["strategy"].split("_")
    crop, scale, rotate = PARAMS["crop"], PARAMS["scale"], PARAMS["rotate"]
    choice, offsets, sizes, angles = [], [], [], []
    for _ in range(count):
        name = np.random.permutation(augs)[0]
        choice.append(STRATEGIES.index(name))
        offsets.append([0, 0])
        sizes.append([height, height])
        angles.append(0)
        if name == "crop":
            offsets[-1] = [np.random.permutation(crop * 2)[0], np.random.permutation(crop * 2)[0]]
        elif name == "scale":
            sizes[-1] = [
                int(np.random.uniform(1 - scale, 1 + scale) * height),
                int(np.random.uniform(1 - scale, 1 + scale) * height),
            ]
        else:
            angles[-1] = int(np.random.randint(-rotate, rotate))
    return DCDraws(choice, offsets, sizes, angles)


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    utils = import_reference(args.reference, utils="utils").utils
    device = pick_device("cpu")
    real = load_real(load_card("mnist"), args.data_root, "train")
    order = torch.randperm(len(real.images), generator=torch.Generator().manual_seed(args.seed))
    steps, counts = [], dict.fromkeys(STRATEGIES, 0)
    for k in range(args.batches):
        images = real.images[order[k * args.batch : (k + 1) * args.batch]].clone()
        seed = args.seed * 1000 + k
        draws = replay(seed, len(images), images.shape[2])
        suite = apply_dc(images, draws, PARAMS["crop"])
        np.random.seed(seed)
        reference = utils.augment(images.clone(), dict(PARAMS), "cpu")
        for index in draws.choice:
            counts[STRATEGIES[index]] += 1
        diff = (suite - reference).abs()
        steps.append(
            {
                "batch": k,
                "images_max_abs_diff": float(diff.max()),
                "images_rel_diff": float(diff.max() / reference.abs().max()),
                "pixels_differing": int((diff > 0).sum()),
            }
        )
    worst = max(s["images_rel_diff"] for s in steps)
    print(f"dc augmentation: {args.batches} batches of {args.batch}, worst image diff {worst:.2e}")
    write_record(
        args.out,
        "dc-augment",
        device,
        family="evaluation: DC augmentation",
        recipe="every recipe with eval.augmentation = dc",
        reference=REFERENCE,
        shims=SHIMS,
        unit=f"batches of {args.batch}",
        params=PARAMS,
        seed=args.seed,
        transforms=counts,
        sides={"faithful": steps},
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
