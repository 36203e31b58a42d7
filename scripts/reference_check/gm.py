"""Differential check of DC gradient matching: the suite's ``distillbench_methods.gm.distill`` and
the DC reference code's own training loop (``main.py``'s, driven here step by step with the
reference's ``get_network``, ``match_loss`` and ``epoch``), from the same initial synthetic images,
the same network weights at every outer iteration and the same real batches. Per outer iteration it
compares the matching loss and the synthetic images after the update.

    python scripts/reference_check/gm.py --reference DIR [--ipc 1 --iterations 20]
        [--ipc 10 --iterations 2] [--speed] [--data-root ../shared/datasets]
        [--out leaderboards/fidelity]

``--reference`` is a checkout of VICO-UoE/DatasetCondensation@53f63a6 (not part of this project:
``git clone`` it, or ``git archive`` a fetched copy); its modules are imported from there,
unchanged. ``--speed`` adds a second suite side with GM's long-run speed settings (compiled real
gradients), which claim the same results up to float summation order. Writes
``<out>/gm-ipc<k>-<commit>.json`` (``bench.api.write_record``) and rewrites
``leaderboards/fidelity.md`` from every record there (``bench.reports.fidelity``).

Shims (the reference's driver, not its maths): its ``main.py`` loop is re-stated here so that
the network of iteration ``it`` is the suite's (weights copied into the reference's ConvNet
after its ``get_network``, which seeds torch from the clock) and the real batches and the
inner-loop order are the suite's draws (``DataLoader`` without shuffling over the images in the
suite's order); the reference's ``args`` is a namespace with ``dis_metric = "ours"``,
``device = "cpu"``, ``dsa = False``.
"""

from __future__ import annotations

import dataclasses
import types

import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.api import build_network, load_card, load_real, pick_device, write_record
from bench.reports.fidelity import (
    check_parser,
    import_reference,
    step_difference,
    write_table,
)
from distillbench_methods import gm

REFERENCE = "VICO-UoE/DatasetCondensation@53f63a6"
SHIMS = [
    "main.py's loop re-stated as a driver (networks, real batches and inner-loop order from "
    "the suite's seeds; weights copied into the reference's get_network ConvNet)",
    "args = namespace(dis_metric='ours', device='cpu', dsa=False)",
    "inner loop: DataLoader(shuffle=False) over the synthetic set in the suite's drawn order",
]


def reference_distill(ref, real_by_class, images, ipc, config, seed, iterations):
    """The reference's outer/inner loops on the suite's draws; yields (loss, images) per
    iteration (``main.py`` lines 99-215 at 53f63a6)."""
    args = types.SimpleNamespace(dis_metric="ours", device="cpu", dsa=False)
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
        names = list(net.state_dict())
        assert [net.state_dict()[n].shape for n in names] == [w.shape for w in weights.values()]
        net.load_state_dict(dict(zip(names, weights.values(), strict=True)))
        net.train()
        net_parameters = list(net.parameters())
        optimizer_net = torch.optim.SGD(net.parameters(), lr=config.lr_net)
        loss_avg = 0.0
        for ol in range(outer_loop):
            real_batches = gm.draw_real_batches(real_by_class, config.batch_real, generator)
            loss = torch.tensor(0.0)
            for c in range(classes):
                img_real = real_batches[c]
                lab_real = torch.full((len(img_real),), c, dtype=torch.long)
                img_syn = image_syn[c * ipc : (c + 1) * ipc]
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
                loader = DataLoader(
                    TensorDataset(train[order], label_syn[order]),
                    batch_size=config.batch_train,
                    shuffle=False,
                )
                ref.utils.epoch("train", loader, net, optimizer_net, criterion, args, aug=False)
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
    args = parser.parse_args()
    cells = list(zip(args.ipc or [1, 10], args.iterations or [20, 2], strict=True))

    ref = import_reference(args.reference, utils="utils")
    device = pick_device("cpu")
    card = load_card("mnist")
    real = load_real(card, args.data_root, "train")
    real_by_class = [real.images[real.labels == c] for c in range(card.num_classes)]
    sides = {"faithful": gm.GMConfig()}
    if args.speed:
        sides["long-run speed settings"] = dataclasses.replace(
            gm.GMConfig(), **gm.METHOD.long_run_speed
        )
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
                f"gm ipc {ipc}, {name}: {iterations} outer iterations, worst image diff {worst:.2e}"
            )
        write_record(
            args.out,
            f"gm-ipc{ipc}",
            device,
            family="gm",
            recipe=f"gm-mnist-ipc{ipc}",
            reference=REFERENCE,
            shims=SHIMS,
            ipc=ipc,
            iterations=iterations,
            seed=args.seed,
            outer_inner_loops=list(gm.loops_for(ipc, sides["faithful"])),
            sides=results,
        )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
