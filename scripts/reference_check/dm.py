"""Differential check of distribution matching: the suite's ``distillbench_methods.dm.distill``
and the DC reference code's own DM update (``main_DM.py``'s, driven here iteration by iteration
with the reference's ``get_network``, its ConvNet's ``embed`` and its ``DiffAugment``), from the
same initial synthetic images, the same network weights at every update, the same real batches
and the same DSA seeds. Per update it compares the loss and the synthetic images after the step.

    python scripts/reference_check/dm.py --reference DIR [--ipc 1 --iterations 50]
        [--ipc 10 --iterations 10] [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--reference`` is a checkout of VICO-UoE/DatasetCondensation@53f63a6; its modules are imported
from there, unchanged. Writes ``<out>/dm-ipc<k>-<commit>.json`` and rewrites
``leaderboards/fidelity.md``.

Shims (the reference's driver, not its maths): ``main_DM.py``'s update loop is re-stated so that
the network of update ``it`` is the suite's (weights copied into the reference's ConvNet after
its ``get_network``), the real batches are the suite's draws and each class's DSA seed is the
suite's draw (the reference takes ``int(time.time() * 1000) % 100000``).
"""

from __future__ import annotations

import dataclasses

import torch

from bench.api import build_network, load_card, load_real, pick_device, write_record
from bench.reports.fidelity import (
    ONE_IMAGE_SHIM,
    RESHAPE_SHIM,
    check_parser,
    dc_siamese,
    import_reference,
    reshaping,
    step_difference,
    write_table,
)
from distillbench_methods import dm, gm

REFERENCE = "VICO-UoE/DatasetCondensation@53f63a6"
SHIMS = [
    "main_DM.py's update loop re-stated as a driver (networks and real batches from the suite's "
    "seeds; weights copied into the reference's get_network ConvNet)",
    "each class's DSA seed drawn from the suite's stream instead of the clock",
    ONE_IMAGE_SHIM,
    RESHAPE_SHIM,
]


def reference_distill(ref, real_by_class, images, ipc, config, seed, iterations):
    """The reference's DM updates on the suite's draws; yields (loss, images) per update
    (``main_DM.py`` lines 124-199 at 53f63a6, the branch without BatchNorm)."""
    classes = len(real_by_class)
    channel, size = images.shape[1], tuple(images.shape[2:])
    image_syn = images.clone().requires_grad_(True)
    optimizer_img = torch.optim.SGD([image_syn], lr=config.lr_img, momentum=0.5)
    for it in range(iterations):
        generator = torch.Generator().manual_seed(dm.STREAMS.seed(seed, "iteration", it))
        weights = build_network(
            config.model, channel, classes, size, dm.STREAMS.seed(seed, "network", it)
        ).state_dict()
        net = reshaping(ref.utils.get_network(config.model, channel, classes, size))
        names = list(net.state_dict())
        net.load_state_dict(dict(zip(names, weights.values(), strict=True)))
        net.train()
        for param in net.parameters():
            param.requires_grad = False
        real_batches = gm.draw_real_batches(real_by_class, config.batch_real, generator)
        loss = torch.tensor(0.0)
        for c in range(classes):
            img_real = real_batches[c]
            img_syn = image_syn[c * ipc : (c + 1) * ipc].reshape((ipc, channel, *size))
            dsa_seed = int(torch.randint(100000, (1,), generator=generator))
            img_real = dc_siamese(ref.utils, img_real, config.dsa_strategy, dsa_seed)
            img_syn = dc_siamese(ref.utils, img_syn, config.dsa_strategy, dsa_seed)
            output_real = net.embed(img_real).detach()
            output_syn = net.embed(img_syn)
            loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        yield loss.item() / classes, image_syn.detach().clone()


def suite_distill(real, ipc, config, seed, iterations, device):
    """``distillbench_methods.dm.distill`` for ``iterations`` updates; (loss, images) of each."""
    steps = []

    def after_iteration(it, metrics, state):
        steps.append((metrics["distill/loss"], state()["images"].clone()))

    dm.distill(
        real, ipc, dataclasses.replace(config, iterations=iterations), seed, device,
        after_iteration=after_iteration,
    )  # fmt: skip
    return steps


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--ipc", type=int, action="append", help="default: 1 and 10")
    parser.add_argument("--iterations", type=int, action="append", help="one per --ipc")
    args = parser.parse_args()
    cells = list(zip(args.ipc or [1, 10], args.iterations or [50, 10], strict=True))

    ref = import_reference(args.reference, utils="utils")
    device = pick_device("cpu")
    card = load_card("mnist")
    real = load_real(card, args.data_root, "train")
    real_by_class = [real.images[real.labels == c] for c in range(card.num_classes)]
    config = dm.DMConfig()
    for ipc, iterations in cells:
        start = gm.initial_synthetic_images(real_by_class, ipc, config, args.seed)
        reference = list(
            reference_distill(ref, real_by_class, start, ipc, config, args.seed, iterations)
        )
        suite = suite_distill(real, ipc, config, args.seed, iterations, device)
        pairs = enumerate(zip(reference, suite, strict=True))
        rows = [step_difference(it, r, s) for it, (r, s) in pairs]
        worst = max(r["images_rel_diff"] for r in rows)
        print(f"dm ipc {ipc}: {iterations} updates, worst image diff {worst:.2e}")
        write_record(
            args.out,
            f"dm-ipc{ipc}",
            device,
            family="dm",
            recipe=f"dm-mnist-ipc{ipc}",
            reference=REFERENCE,
            shims=SHIMS,
            unit="updates",
            ipc=ipc,
            iterations=iterations,
            seed=args.seed,
            dsa_strategy=config.dsa_strategy,
            sides={"faithful": rows},
        )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
