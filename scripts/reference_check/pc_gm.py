"""Differential check of point-cloud gradient matching: the suite's ``pc_gm.distill`` and the
dd3d reference code's own networks (``MEPytorch``, dense; ``MEConvExp``, sparse), data path
(``Mnist2D.get_dataset``, ``Mnist2Dreal``, ``Mnist2Dsyn``, ``minkowski_collate_fn``,
``create_input_batch``) and distance (``distillation_loss.match_loss``), driven iteration by
iteration from the same initial clouds, the same network weights and the same real digits. Per
iteration it compares the matching loss (per class) and the clouds after the SGD step; with
``--outcome-sets`` it then distils that many sets per side at the recipe's smoke budget and
compares their final accuracies set-level (``compare_outcomes``).

    python scripts/reference_check/pc_gm.py --reference DIR [--network dense --network sparse]
        [--iterations 5] [--batch-real 256] [--outcome-sets 10 [--outcome-iterations N]
        --margin 1.0] [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--reference`` is a checkout of kghandour/dd3d@d3dc89f; its modules are imported from there,
unchanged. Both sides need MinkowskiEngine (the reference batches and voxelises with it even for
its dense network): ``scripts/install_minkowski.sh``. Writes
``<out>/pc-gm-<network>-<commit>.json`` and rewrites ``leaderboards/fidelity.md``.

Shims (the reference's driver and configuration, not its maths): ``mnist_distill.py``'s
iteration (L309-368) is re-stated as a driver; ``configs.settings`` (which reads an ini file,
opens TensorBoard and imports open3d at import time) is replaced by a module holding the few
values the imported code reads; the clock-seeded initial clouds and ``np.random.permutation``
picks are the suite's draws; ``MEPytorch``'s hard-coded ``net_depth = 3`` is set to the
recipe's 2 (the reference edits that line per run); the network's weights are the suite's.
"""

from __future__ import annotations

import dataclasses
import sys
import types

import torch
import torch.nn as nn

from bench.api import derive_seed, load_card, load_real, pick_device, write_record
from bench.core.seeds import RUNNER_STREAMS
from bench.evaluation.evaluate import evaluate_synthetic_set
from bench.evaluation.stats import decide, interval, two_sample_set_test
from bench.reports.fidelity import check_parser, import_reference, step_difference, write_table
from bench.spec.recipes import load_recipe, resolve
from distillbench_methods import pc_gm
from distillbench_methods.pointclouds import clamp_to_grid

REFERENCE = "kghandour/dd3d@d3dc89f"
SHIMS = [
    "mnist_distill.py's iteration (L309-368) re-stated as a driver (initial clouds, real picks "
    "and network weights from the suite's seeds)",
    "configs.settings replaced by a module with num_points, Pyt, device, num_workers and the "
    "MNIST folder (the original reads an ini file, opens TensorBoard and imports open3d)",
    "MEPytorch's hard-coded net_depth = 3 set to the recipe's layers (edited per run upstream)",
]
RECIPES = {"dense": "pc-gm-mnist-pytorch-2layer", "sparse": "pc-gm-mnist-me-2layer"}


def settings_module(data_root) -> types.ModuleType:
    """The values of ``configs/default.ini`` and ``configs/settings.py`` that the imported
    reference modules read (``num_points``, ``Pyt``, ``device``, ``num_workers``, the MNIST
    folder), as a stand-in ``configs.settings`` module (``Pyt``, True for the dense network,
    is set per network)."""
    settings = types.ModuleType("configs.settings")
    settings.num_points = 250
    settings.device = "cpu"
    settings.num_workers = 0
    settings.mnistconfig = {"dataset_dir": str(data_root)}
    package = types.ModuleType("configs")
    package.settings = settings
    sys.modules.update({"configs": package, "configs.settings": settings})
    return settings


def reference_network(ref, network: str, layers: int, suite_net: nn.Module) -> nn.Module:
    """The reference's network of ``network`` with ``suite_net``'s weights, parameter for
    parameter in registration order (both register convolutions, norms, then the head)."""
    if network == "dense":

        class WithDepth(ref.models.MEPytorch):  # the line upstream edits per run
            def _make_pytorch_layers(self, in_channel, out_channel):
                self.net_depth = layers
                return super()._make_pytorch_layers(in_channel, out_channel)

        net = WithDepth(3, 10)
    else:
        net = ref.models.MEConvExp(in_channel=3, out_channel=10)
    with torch.no_grad():
        pairs = zip(net.parameters(), suite_net.parameters(), strict=True)
        for mine, theirs in pairs:
            mine.copy_(theirs.reshape(mine.shape))
    return net.train()


def reference_distill(ref, net, images_all, pools, start, config, seed, iterations):
    """The reference's iterations (``mnist_distill.py`` L309-368 at d3dc89f, ``outer_loop`` 1)
    on the suite's draws; yields (loss per class, clouds after the step) per iteration."""
    classes, ipc = len(pools), len(start) // len(pools)
    image_syn = start.clone()
    optimizer_img = torch.optim.SGD(
        [image_syn], lr=config.lr_points, momentum=config.momentum_points
    )
    criterion = nn.CrossEntropyLoss()
    net_parameters = list(net.parameters())
    for it in range(iterations):
        image_syn.requires_grad_(False)
        image_syn[image_syn < 0] = 0
        image_syn[image_syn > 27] = 27
        image_syn[:, :, 0] = 0
        image_syn.requires_grad_()
        generator = torch.Generator().manual_seed(pc_gm.STREAMS.seed(seed, "iteration", it))
        loss = torch.tensor(0.0)
        for c, pool in enumerate(pools):
            pick = pool[torch.randperm(len(pool), generator=generator)[: config.batch_real]]
            labels = torch.full((len(pick),), c, dtype=torch.long)
            real = ref.data.Mnist2Dreal(images_all[pick], labels, False)
            loss_real = torch.tensor(0.0)
            for batch in ref.data.get_mnist_dataloader(real, len(pick)):
                output = net(ref.models.create_input_batch(batch, True, "cpu", 1))
                loss_real += criterion(output, batch["labels"])
            gw_real = [g.detach().clone() for g in torch.autograd.grad(loss_real, net_parameters)]
            clouds = image_syn[c * ipc : (c + 1) * ipc]
            syn = ref.data.Mnist2Dsyn(clouds, torch.full((ipc,), c, dtype=torch.long), False)
            for batch in ref.data.get_mnist_dataloader(syn, ipc):
                output = net(ref.models.create_input_batch(batch, True, "cpu", 1))
                loss_syn = criterion(output, batch["labels"])
                gw_syn = torch.autograd.grad(loss_syn, net_parameters, create_graph=True)
            loss += ref.loss.match_loss(gw_syn, gw_real, "modmse", "cpu")  # sum of squares
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        yield loss.item() / classes, image_syn.detach().clone()


def suite_distill(real, config, seed, iterations, device):
    """``distillbench_methods.pc_gm.distill`` (ipc 1) for ``iterations`` iterations: (loss per
    class, clouds after the step) of each, and the synthetic set."""
    steps = []

    def after_iteration(it, metrics, state):
        steps.append((metrics["distill/loss"], state()["points"].clone()))

    synset = pc_gm.distill(
        real, 1, dataclasses.replace(config, iterations=iterations), seed, device,
        after_iteration=after_iteration,
    )  # fmt: skip
    return steps, synset


def both_sides(ref, images_all, real, config, seed, iterations, device):
    """Both sides from the same draws of ``seed``: the suite's initial clouds, network weights
    and real picks, the reference's network given those weights; ``iterations`` iterations each.

    Returns:
        (reference steps, suite steps, the suite's synthetic set); a step is (loss per class,
        clouds ``[K, P, 3]`` after the update).
    """
    pools = [torch.nonzero(real.labels == c).flatten() for c in range(real.card.num_classes)]
    start = pc_gm.initial_points(len(pools), config.points, seed, config.init_span)
    suite_net = pc_gm.build_network(config, pc_gm.STREAMS.seed(seed, "network"))
    net = reference_network(ref, config.network, config.layers, suite_net)
    draws = (images_all, pools, start, config, seed, iterations)
    reference = list(reference_distill(ref, net, *draws))
    suite, synset = suite_distill(real, config, seed, iterations, device)
    return reference, suite, synset


def compare_outcomes(ref, images_all, real, test, recipe, args, device) -> dict:
    """``args.outcome_sets`` synthetic sets per side at the recipe's smoke budget (with
    ``args.outcome_iterations`` iterations where given), set ``i`` distilled from seed
    ``derive_seed(args.seed, i)`` as the runner derives it, from the same initial clouds,
    network weights and real picks on both sides, each evaluated by the shared evaluation with
    the same evaluation seed; the difference suite - reference judged set-level with
    ``args.margin``."""
    sides: dict[str, list[list[float]]] = {"reference": [], "suite": []}
    drift = []
    for index in range(args.outcome_sets):
        seed = derive_seed(args.seed, index)
        iterations = args.outcome_iterations
        options = {"method": {"iterations": str(iterations)}} if iterations else None
        run = resolve(recipe, "smoke", seed, options)
        config = run.method_config
        reference, _, synset = both_sides(
            ref, images_all, real, config, seed, config.iterations, device
        )
        clouds = clamp_to_grid(reference[-1][1])
        drift.append(float((synset.extras["points"] - clouds).abs().max()))
        images = pc_gm.projected_images(clouds, real.card, config.pixels)
        reference_set = dataclasses.replace(synset, images=images, extras={})
        evaluation_seed = RUNNER_STREAMS.seed(seed, "evaluation")
        for side, this in (("reference", reference_set), ("suite", synset)):
            accuracies = evaluate_synthetic_set(this, test, run.eval, evaluation_seed, device)
            sides[side].append(accuracies[run.eval.models[0]])
        print(f"set {index}: reference {sides['reference'][-1]}, suite {sides['suite'][-1]}")
    result = two_sample_set_test(sides["suite"], sides["reference"], args.margin)
    outcome, reason = decide(result, recipe.alpha, args.margin)
    low, high = interval(result, recipe.alpha)
    return {
        "budget": f"smoke, {config.iterations} iterations",
        "sets_per_side": args.outcome_sets,
        "networks_per_set": run.eval.num_eval,
        "margin": args.margin,
        "difference": result["difference"],
        "interval": [low, high],
        "p_equivalence": result["p_equivalence"],
        "p_difference": result["p_difference"],
        "outcome": outcome,
        "reason": reason,
        "worst_final_cloud_diff": max(drift),
        "sets": sides,
    }


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--network", action="append", choices=sorted(RECIPES))
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--outcome-sets", type=int, default=0, help="0: no outcome comparison")
    parser.add_argument("--outcome-iterations", type=int, help="default: the smoke budget's")
    parser.add_argument("--margin", type=float, default=1.0, help="pp, outcome comparison")
    args = parser.parse_args()
    device = pick_device("cpu")
    card = load_card("mnist")
    settings = settings_module(args.data_root)
    # utils first, as the reference's configs.settings does: MinkowskiEngine appends its own
    # folder, which holds a regular package named utils, to sys.path when it is imported
    ref = import_reference(
        args.reference, data="utils.Mnist2D", models="models.MEConv", loss="distillation_loss"
    )
    # the reference's binary digits, from its own get_dataset (ToTensor, ThresholdTransform)
    images_all = torch.stack([image for image, _ in ref.data.get_dataset(False)[6]])
    for network in args.network or ["dense", "sparse"]:
        settings.Pyt = network == "dense"
        config = pc_gm.PCGMConfig(network=network, layers=2, batch_real=args.batch_real)
        real = pc_gm.binarised(load_real(card, args.data_root, "train"), config)
        same_digits = torch.equal(images_all[:, 0] > 0.5, pc_gm.occupancy(real))
        reference, suite, _ = both_sides(
            ref, images_all, real, config, args.seed, args.iterations, device
        )
        pairs = enumerate(zip(reference, suite, strict=True))
        rows = [step_difference(it, r, s) for it, (r, s) in pairs]
        worst = max(r["images_rel_diff"] for r in rows)
        print(f"pc-gm {network}: {args.iterations} iterations, worst cloud diff {worst:.2e}")
        outcome = {}
        if args.outcome_sets:
            test = pc_gm.binarised(load_real(card, args.data_root, "test"), config)
            recipe = load_recipe(RECIPES[network])
            outcome = compare_outcomes(ref, images_all, real, test, recipe, args, device)
            print(f"pc-gm {network} outcome: {outcome['outcome']} ({outcome['reason']})")
        write_record(
            args.out,
            f"pc-gm-{network}",
            device,
            family="pc-gm",
            recipe=RECIPES[network],
            reference=REFERENCE,
            shims=SHIMS,
            unit="iterations",
            ipc=1,
            iterations=args.iterations,
            seed=args.seed,
            batch_real=args.batch_real,
            binary_digits_identical=same_digits,
            sides={"faithful": rows},
            **({"outcome": outcome} if outcome else {}),
        )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
