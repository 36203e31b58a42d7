"""Differential check of MTT: the suite's ``distillbench_methods.mtt.distill`` and the MTT reference
code's own student loop (``distill.py``'s, driven here iteration by iteration with the reference's
``get_network``, ``ReparamModule`` and its loss), from the same initial synthetic images, the same
expert trajectory and start epoch at every iteration and the same mini-batch order. Per iteration it
compares the trajectory-matching loss, the synthetic images and the learned learning rate after the
update.

    python scripts/reference_check/mtt.py --reference DIR --experts-dir DIR
        [--iterations 5 --syn-steps 10] [--data-root ../shared/datasets]
        [--out leaderboards/fidelity]

``--reference`` is a checkout of GeorgeCazenavette/mtt-distillation@50dccea; ``--experts-dir``
holds expert trajectories the suite made (``python -m bench experts --dataset cifar10-jpeg
--model ConvNet --preprocessing zca --num-experts 1 --epochs 2 --images-per-class 1000
--experts-dir DIR``, a minute here; experts of 20 images per class move so little in an epoch
that the learned learning rate turns negative within three iterations). The data are the
CIFAR-10 JPEG copy (labelled so; the per-step agreement does not depend on which copy). Writes
``<out>/mtt-ipc1-<commit>.json`` and rewrites ``leaderboards/fidelity.md``.

Shims (the reference's driver, not its maths): ``distill.py``'s loop is re-stated here so that the
expert and the start epoch are the suite's draws (the reference draws them from numpy's global
RNG) and torch's global RNG, from which the reference draws the mini-batch order and DSA's
parameters, is seeded with the suite's per-iteration seed and advanced past those two draws, so
both sides draw the same stream; both read the suite's expert files (the reference's buffer holds
per-epoch parameter lists whose concatenation is the same flat vector).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from bench.api import load_card, load_real, pick_device, write_record
from bench.reports.fidelity import (
    check_parser,
    import_reference,
    step_difference,
    write_table,
)
from distillbench_methods import mtt

REFERENCE = "GeorgeCazenavette/mtt-distillation@50dccea"
SHIMS = [
    "distill.py's loop re-stated as a driver (expert and start epoch from the suite's seeds)",
    "torch's global RNG (mini-batch order, DiffAugment) seeded per iteration as the suite's "
    "generator and advanced past its expert and start-epoch draws",
    "expert trajectories: the suite's files, flattened as the reference concatenates its buffer",
]


def reference_distill(
    ref, experts, images, labels, config, seed, iterations, card, augment=None, reduction="sum"
):
    """The reference's iteration (``distill.py`` lines 296-395 at 50dccea) on the suite's draws;
    yields (loss, images, lr) after each update. ``ref.utils`` gives ``get_network``,
    ``DiffAugment`` and ``ParamDiffAug``, ``ref.reparam_module`` the ``ReparamModule``; the
    EuroSAT work's copy of the loop (``scripts/reference_check/mtt_eurosat.py``) calls its
    ``DiffAugment`` whatever ``config.dsa`` says (``augment``, default ``config.dsa``) and takes
    the parameter distances with ``reduction="mean"`` (then also divided by the parameter count,
    on both sides of the ratio); ``reduction="ratio"`` is a shim that takes the ratio of the two
    summed distances as the suite does, without the divisions (the same number, other
    rounding)."""
    augment = config.dsa if augment is None else augment
    image_syn = images.clone().requires_grad_(True)
    syn_lr = torch.tensor(config.lr_teacher).requires_grad_(True)
    optimizer_img = torch.optim.SGD([image_syn], lr=config.lr_img, momentum=0.5)
    optimizer_lr = torch.optim.SGD([syn_lr], lr=config.lr_lr, momentum=0.5)
    criterion = torch.nn.CrossEntropyLoss()
    batch_syn = config.batch_syn or len(labels)
    dsa_param = ref.utils.ParamDiffAug()
    for it in range(iterations):
        net = ref.utils.get_network(  # before seeding: it seeds torch from the clock
            config.model, card.channels, card.num_classes, card.image_size, dist=False
        )
        torch.manual_seed(mtt.STREAMS.seed(seed, "iteration", it))
        expert = int(torch.randint(len(experts.files), ()))
        start_epoch = int(torch.randint(config.max_start_epoch, ()))
        student_net = ref.reparam_module.ReparamModule(net)
        student_net.train()
        num_params = sum([np.prod(p.size()) for p in (student_net.parameters())])
        starting_params = experts.flat_parameters(expert, start_epoch)
        target_params = experts.flat_parameters(expert, start_epoch + config.expert_epochs)
        student_params = [starting_params.clone().requires_grad_(True)]
        indices_chunks: list[torch.Tensor] = []
        for _ in range(config.syn_steps):
            if not indices_chunks:
                indices = torch.randperm(len(image_syn))
                indices_chunks = list(torch.split(indices, batch_syn))
            these_indices = indices_chunks.pop()
            x = image_syn[these_indices]
            if augment:
                x = ref.utils.DiffAugment(x, config.dsa_strategy, param=dsa_param)
            x = student_net(x, flat_param=student_params[-1])
            ce_loss = criterion(x, labels[these_indices])
            grad = torch.autograd.grad(ce_loss, student_params[-1], create_graph=True)[0]
            student_params.append(student_params[-1] - syn_lr * grad)
        mse = torch.nn.functional.mse_loss
        if reduction == "ratio":
            param_loss = mse(student_params[-1], target_params, reduction="sum")
            param_dist = mse(starting_params, target_params, reduction="sum")
        else:
            param_loss = mse(student_params[-1], target_params, reduction=reduction) / num_params
            param_dist = mse(starting_params, target_params, reduction=reduction) / num_params
        grand_loss = param_loss / param_dist
        optimizer_img.zero_grad()
        optimizer_lr.zero_grad()
        grand_loss.backward()
        optimizer_img.step()
        optimizer_lr.step()
        yield grand_loss.item(), image_syn.detach().clone(), syn_lr.item()


def suite_distill(real, config, seed, iterations, device):
    """``distillbench_methods.mtt.distill`` (ipc 1) for ``iterations``; (loss, images, lr) of
    each."""
    steps = []

    def after_iteration(it, metrics, state):
        now = state()
        steps.append((metrics["distill/loss"], now["images"].clone(), float(now["lr"])))

    config = dataclasses.replace(config, iterations=iterations)
    mtt.distill(real, 1, config, seed, device, after_iteration=after_iteration)
    return steps


def compare(reference_steps, suite_steps) -> list[dict]:
    """Per iteration: ``step_difference`` and the relative difference of the learned learning
    rates."""
    rows = []
    for it, (reference, suite) in enumerate(zip(reference_steps, suite_steps, strict=True)):
        lr_r, lr_s = reference[2], suite[2]
        rows.append(
            {
                **step_difference(it, reference, suite),
                "lr_reference": lr_r,
                "lr_suite": lr_s,
                "lr_rel_diff": abs(lr_s - lr_r) / abs(lr_r),
            }
        )
    return rows


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--experts-dir", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--syn-steps", type=int, default=10)
    parser.add_argument("--expert-images-per-class", type=int, default=1000)
    args = parser.parse_args()

    ref = import_reference(args.reference, utils="utils", reparam_module="reparam_module")
    device = pick_device("cpu")
    # mtt-cifar10-ipc1's settings (DSA included), on experts of 2 epochs: start 0, target 1
    config = mtt.MTTConfig(
        syn_steps=args.syn_steps,
        expert_epochs=1,
        max_start_epoch=1,
        lr_img=100.0,
        lr_lr=1e-7,
        lr_teacher=0.01,
        preprocessing="zca",
        dsa_strategy="color_crop_cutout_flip_scale_rotate",
        num_experts=1,
        expert_train_epochs=2,
        expert_images_per_class=args.expert_images_per_class,
        experts_dir=str(args.experts_dir),
    )
    card = load_card("cifar10-jpeg")
    train = load_real(card, args.data_root, "train")
    test = load_real(card, args.data_root, "test")
    real, _ = mtt.METHOD.prepare_real(train, test, config)
    experts = mtt.load_experts(real, config)
    real_by_class = [real.images[real.labels == c] for c in range(card.num_classes)]
    start = mtt.initial_synthetic_images(real_by_class, 1, config, args.seed)
    labels = torch.arange(card.num_classes)
    reference_steps = list(
        reference_distill(ref, experts, start, labels, config, args.seed, args.iterations, card)
    )
    rows = compare(reference_steps, suite_distill(real, config, args.seed, args.iterations, device))
    worst = max(r["images_rel_diff"] for r in rows)
    print(
        f"mtt ipc 1: {args.iterations} iterations of {args.syn_steps} student steps, "
        f"worst image diff {worst:.2e}"
    )
    write_record(
        args.out,
        "mtt-ipc1",
        device,
        family="mtt",
        recipe="mtt-cifar10-ipc1",
        reference=REFERENCE,
        shims=SHIMS,
        data="cifar10-jpeg",
        ipc=1,
        iterations=args.iterations,
        syn_steps=args.syn_steps,
        expert_images_per_class=args.expert_images_per_class,
        seed=args.seed,
        sides={"faithful": rows},
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
