"""Differential check of DC gradient matching (and of DSA, ``--method dsa``): the suite's
``distillbench_methods.gm.distill`` and the DC reference code's own training loop (``main.py``'s,
driven here step by step with the reference's ``get_network``, ``match_loss``, ``epoch`` and,
for DSA, ``DiffAugment``), from the same initial synthetic images, the same network weights at
every outer iteration and the same real batches. Per outer iteration it compares the matching
loss and the synthetic images after the update.

    python scripts/reference_check/gm.py --reference DIR [--method gm|dsa]
        [--ipc 1 --iterations 20] [--ipc 10 --iterations 2] [--speed]
        [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--reference`` is a checkout of VICO-UoE/DatasetCondensation@53f63a6 (not part of this project:
``git clone`` it, or ``git archive`` a fetched copy); its modules are imported from there,
unchanged. ``--speed`` adds a second suite side with GM's long-run speed settings (compiled real
gradients), which claim the same results up to float summation order. ``--method dsa`` runs
``main.py --method DSA --init real --dsa_strategy color_crop_cutout_scale_rotate`` (the README's
strategy for the digit datasets). Writes ``<out>/<method>-ipc<k>-<commit>.json``
(``bench.api.write_record``) and rewrites ``leaderboards/fidelity.md`` from every record there
(``bench.reports.fidelity``).

Shims (the reference's driver, not its maths; listed in each record): its ``main.py`` loop is
re-stated here so that the network of iteration ``it`` is the suite's (weights copied into the
reference's ConvNet after its ``get_network``, which seeds torch from the clock), and the real
batches, the inner-loop order and, for DSA, the seeds and draws of the augmentation are the
suite's; the reference's ``args`` is a namespace.
"""

from __future__ import annotations

import dataclasses
import types

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
from distillbench_methods import gm

REFERENCE = "VICO-UoE/DatasetCondensation@53f63a6"
SHIMS = [
    "main.py's loop re-stated as a driver (networks, real batches and inner-loop order from "
    "the suite's seeds; weights copied into the reference's get_network ConvNet)",
    "args = namespace(dis_metric='ours', device='cpu', dsa=False)",
    "inner loop: the reference's epoch over the synthetic set's mini-batches in the suite's "
    "drawn order (a list for its DataLoader)",
]
DSA_SHIMS = [
    "args.dsa = True with the recipe's strategy; each class's siamese seed drawn from the "
    "suite's stream instead of the clock",
    "inner loop: torch's global RNG (DiffAugment's per-call draws) handed the suite generator's "
    "state before each epoch and back after it",
    ONE_IMAGE_SHIM,
    RESHAPE_SHIM,
]


def reference_distill(ref, real_by_class, images, ipc, config, seed, iterations):
    """The reference's outer/inner loops on the suite's draws; yields (loss, images) per
    iteration (``main.py`` lines 99-215 at 53f63a6)."""
    strategy = gm.dsa_strategy(config)
    args = types.SimpleNamespace(
        dis_metric="ours",
        device="cpu",
        dsa=strategy is not None,
        dsa_strategy=strategy,
        dsa_param=ref.utils.ParamDiffAug(),
    )
    classes = len(real_by_class)
    outer_loop, inner_loop = gm.loops_for(ipc, config)
    channel, size = images.shape[1], tuple(images.shape[2:])
    image_syn = images.clone().requires_grad_(True)
    label_syn = torch.arange(classes).repeat_interleave(ipc)
    optimizer_img = torch.optim.SGD([image_syn], lr=config.lr_img, momentum=0.5)
    criterion = torch.nn.CrossEntropyLoss()
    for it in range(iterations):
        generator = torch.Generator().manual_seed(gm.STREAMS.seed(seed, "iteration", it))
        weights = build_network(
            config.model, channel, classes, size, gm.STREAMS.seed(seed, "network", it)
        ).state_dict()
        net = ref.utils.get_network(config.model, channel, classes, size)
        if strategy is not None:
            net = reshaping(net)
        names = list(net.state_dict())
        assert [net.state_dict()[n].shape for n in names] == [w.shape for w in weights.values()]
        net.load_state_dict(dict(zip(names, weights.values(), strict=True)))
        net.train()
        net_parameters = list(net.parameters())
        optimizer_net = torch.optim.SGD(net.parameters(), lr=config.lr_net)
        loss_avg = 0.0
        for ol in range(outer_loop):
            real_batches = gm.draw_real_batches(real_by_class, config.batch_real, generator)
            seeds = None if strategy is None else gm.draw_dsa_seeds(classes, generator)
            loss = torch.tensor(0.0)
            for c in range(classes):
                img_real = real_batches[c]
                lab_real = torch.full((len(img_real),), c, dtype=torch.long)
                img_syn = image_syn[c * ipc : (c + 1) * ipc]
                if strategy is not None:
                    img_real = dc_siamese(ref.utils, img_real, strategy, seeds[c])
                    img_syn = dc_siamese(ref.utils, img_syn, strategy, seeds[c])
                lab_syn = torch.full((ipc,), c, dtype=torch.long)
                gw_real = torch.autograd.grad(criterion(net(img_real), lab_real), net_parameters)
                gw_real = [g.detach().clone() for g in gw_real]
                loss_syn = criterion(net(img_syn), lab_syn)
                gw_syn = torch.autograd.grad(loss_syn, net_parameters, create_graph=True)
                loss += ref.utils.match_loss(gw_syn, gw_real, args)
            optimizer_img.zero_grad()
            loss.backward()
            optimizer_img.step()
            loss_avg += loss.item()
            if ol == outer_loop - 1:
                break
            train = image_syn.detach().clone()
            for _ in range(inner_loop):
                order = torch.randperm(len(label_syn), generator=generator)
                shuffled, shuffled_labels = train[order], label_syn[order]
                batches = [
                    (
                        shuffled[b : b + config.batch_train],
                        shuffled_labels[b : b + config.batch_train],
                    )
                    for b in range(0, len(order), config.batch_train)
                ]
                if strategy is not None:
                    torch.set_rng_state(generator.get_state())
                aug = strategy is not None
                ref.utils.epoch("train", batches, net, optimizer_net, criterion, args, aug=aug)
                if strategy is not None:
                    generator.set_state(torch.get_rng_state())
        yield loss_avg / (classes * outer_loop), image_syn.detach().clone()


def suite_distill(real, ipc, config, seed, iterations, device):
    """``distillbench_methods.gm.distill`` for ``iterations`` outer iterations; (loss, images) of
    each."""
    steps = []

    def after_iteration(it, metrics, state):
        steps.append((metrics["distill/loss"], state()["images"].clone()))

    config = dataclasses.replace(config, iterations=iterations)
    gm.distill(real, ipc, config, seed, device, after_iteration=after_iteration)
    return steps


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--ipc", type=int, action="append", help="default: 1 and 10")
    parser.add_argument("--iterations", type=int, action="append", help="one per --ipc")
    parser.add_argument("--speed", action="store_true", help="also the long-run speed settings")
    parser.add_argument(
        "--method", choices=["gm", "dsa"], default="gm", help="dsa: the digit datasets' strategy"
    )
    args = parser.parse_args()
    cells = list(zip(args.ipc or [1, 10], args.iterations or [20, 2], strict=True))

    ref = import_reference(args.reference, utils="utils")
    device = pick_device("cpu")
    card = load_card("mnist")
    real = load_real(card, args.data_root, "train")
    real_by_class = [real.images[real.labels == c] for c in range(card.num_classes)]
    dsa = args.method == "dsa"
    # the README's strategy for the digit datasets (no flip)
    faithful = gm.DSAConfig(dsa_strategy="color_crop_cutout_scale_rotate") if dsa else gm.GMConfig()
    sides = {"faithful": faithful}
    if args.speed:
        sides["long-run speed settings"] = dataclasses.replace(faithful, **gm.METHOD.long_run_speed)
    for ipc, iterations in cells:
        start = gm.initial_synthetic_images(real_by_class, ipc, sides["faithful"], args.seed)
        reference_steps = list(
            reference_distill(
                ref, real_by_class, start, ipc, sides["faithful"], args.seed, iterations
            )
        )
        results = {
            name: [
                step_difference(it, r, s)
                for it, (r, s) in enumerate(
                    zip(
                        reference_steps,
                        suite_distill(real, ipc, config, args.seed, iterations, device),
                        strict=True,
                    )
                )
            ]
            for name, config in sides.items()
        }
        for name, rows in results.items():
            worst = max(r["images_rel_diff"] for r in rows)
            print(
                f"{args.method} ipc {ipc}, {name}: {iterations} outer iterations, "
                f"worst image diff {worst:.2e}"
            )
        write_record(
            args.out,
            f"{args.method}-ipc{ipc}",
            device,
            family=args.method,
            recipe=f"{args.method}-mnist-ipc{ipc}",
            reference=REFERENCE,
            shims=SHIMS + (DSA_SHIMS if dsa else []),
            ipc=ipc,
            iterations=iterations,
            seed=args.seed,
            outer_inner_loops=list(gm.loops_for(ipc, sides["faithful"])),
            sides=results,
        )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
