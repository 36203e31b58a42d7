"""Differential check of DSA (differentiable siamese augmentation): the reference code's own
``DiffAugment`` and the suite's ``bench.data.dsa.dsa_augment`` on the same batches of real
CIFAR-10 images, from the same random stream, compared pixel for pixel.

    python scripts/reference_check/dsa.py --reference DIR [--flavour mtt|dc]
        [--batches 60 --batch 256] [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--flavour mtt`` (default): ``--reference`` is a checkout of
GeorgeCazenavette/mtt-distillation@50dccea, whose copy of ``DiffAugment`` aligns the corners of
scale and rotate. ``--flavour dc``: a checkout of VICO-UoE/DatasetCondensation@53f63a6, whose
``DiffAugment`` does not (the suite's ``DSAParams(align_corners=False)``), in both of its modes.
With ``seed=-1`` (the per-call mode: MTT, and DC's inner loop and evaluation) the reference draws
from torch's global RNG; the check seeds it with ``torch.manual_seed(k)`` and gives the suite a
``torch.Generator`` seeded with the same ``k``, so both draw the same numbers if they make the
same calls in the same order, which is what the suite claims. In the siamese mode (``seed=k``:
DSA's and DM's matching) a real batch and a synthetic batch of ``--synthetic`` images are
augmented from the same ``k`` on each side (``DSADraws.siamese``). Per batch it records which
part of the strategy was drawn and the largest difference. Writes ``<out>/dsa-<commit>.json``
(``dsa-dc-...`` for DC's) and rewrites ``leaderboards/fidelity.md``. The data are the CIFAR-10
JPEG copy, normalised.
"""

from __future__ import annotations

import torch

from bench.api import load_card, load_real, pick_device, write_record
from bench.data.dsa import DSADraws, DSAParams, dsa_augment
from bench.reports.fidelity import check_parser, import_reference, write_table

REFERENCES = {
    "mtt": "GeorgeCazenavette/mtt-distillation@50dccea",
    "dc": "VICO-UoE/DatasetCondensation@53f63a6",
}
PARAMS = {"mtt": DSAParams(), "dc": DSAParams(align_corners=False)}
STRATEGY = "color_crop_cutout_flip_scale_rotate"
SHIMS = [
    "the reference's global torch RNG seeded per batch; the suite's generator with the same seed"
]


def compare(suite: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    diff = (suite - reference).abs()
    return {
        "images_max_abs_diff": float(diff.max()),
        "images_rel_diff": float(diff.max() / reference.abs().max()),
    }


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--flavour", choices=list(REFERENCES), default="mtt")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--synthetic", type=int, default=10, help="siamese mode's second batch")
    args = parser.parse_args()

    utils = import_reference(args.reference, utils="utils").utils
    params = PARAMS[args.flavour]
    device = pick_device("cpu")
    real = load_real(load_card("cifar10-jpeg"), args.data_root, "train")
    order = torch.randperm(len(real.images), generator=torch.Generator().manual_seed(args.seed))
    steps = []
    for k in range(args.batches):
        images = real.images[order[k * args.batch : (k + 1) * args.batch]]
        seed = args.seed * 1000 + k
        torch.manual_seed(seed)
        reference = utils.DiffAugment(images.clone(), STRATEGY, param=utils.ParamDiffAug())
        suite = dsa_augment(images, torch.Generator().manual_seed(seed), STRATEGY, params)
        torch.manual_seed(seed)  # the part the reference drew: its first draw
        part = STRATEGY.split("_")[int(torch.randint(0, 6, size=(1,)).item())]
        steps.append({"batch": k, "mode": "per-call", "part": part, **compare(suite, reference)})
        if args.flavour != "dc":
            continue
        synthetic = images[: args.synthetic] * 0.5  # stand-in synthetic images
        for name, batch in (("siamese real", images), ("siamese synthetic", synthetic)):
            reference = utils.DiffAugment(
                batch.clone(), STRATEGY, seed=seed, param=utils.ParamDiffAug()
            )
            suite = dsa_augment(batch, DSADraws.siamese(seed), STRATEGY, params)
            torch.manual_seed(seed)
            part = STRATEGY.split("_")[int(torch.randint(0, 6, size=(1,)).item())]
            steps.append({"batch": k, "mode": name, "part": part, **compare(suite, reference)})
    worst = max(s["images_rel_diff"] for s in steps)
    parts = sorted({s["part"] for s in steps})
    print(
        f"dsa ({args.flavour}): {args.batches} batches of {args.batch} ({', '.join(parts)}), "
        f"worst diff {worst:.2e}"
    )
    dc = args.flavour == "dc"
    write_record(
        args.out,
        "dsa-dc" if dc else "dsa",
        device,
        family="augmentation: DSA (DC's, both modes)" if dc else "augmentation: DSA",
        recipe="DSA and DM (matching, inner loop, evaluation)"
        if dc
        else "every recipe with method.dsa or eval.augmentation = dsa (MTT)",
        reference=REFERENCES[args.flavour],
        shims=SHIMS,
        unit=f"augmented batches (per real batch of {args.batch}: per-call, siamese, and "
        f"siamese on {args.synthetic} synthetic images)"
        if dc
        else f"batches of {args.batch}",
        strategy=STRATEGY,
        data="cifar10-jpeg",
        seed=args.seed,
        sides={"faithful": steps},
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
