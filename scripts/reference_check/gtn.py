"""Differential check of GTN+GM: the suite's faithful generator update
(``distillbench_methods.gtn``, ``GTNTraining`` with ``GTNGMConfig``) and the reference's own
``gmpc_train`` (re-stated here step by step with the reference's ``MNISTTeacher``, ``gm_loss``,
``get_network`` and its optimisers), from the same generator and learner weights, the same real
batches and the same noise. Per iteration (a fresh learner, ``outer_loop`` generator updates each
followed by ``inner_loop`` learner steps) it compares the mean matching loss and the generator's
parameters and batch-norm statistics.

    python scripts/reference_check/gtn.py --reference DIR [--iterations 2 --batch-real 32]
        [--data-root ../shared/datasets] [--out leaderboards/fidelity]

``--reference`` is a checkout of dm-medvedev/EfficientDistillation@7ebe4b9; its modules are
imported from there, unchanged. Writes ``<out>/gtn-gm-ipc10-<commit>.json`` and rewrites
``leaderboards/fidelity.md``.

Shims (the reference's driver and inputs, not its maths): ``gmpc_train`` is re-stated so that the
real batches are the suite's draws (the reference fills them from a shuffling ``DataLoader``),
the noise of each class's train-mode batch and of the learner's eval-mode batch is the suite's
draw (the reference's ``prepare_data`` draws a full batch of noise from torch's global RNG and
keeps one class's rows; the same distribution), the learner's batch is class-major (the reference
interleaves the labels; a whole-batch step does not depend on the order); the suite's generator
and learner weights are copied into the reference's ``MNISTTeacher`` and ``get_network`` ConvNet;
``torch.utils.tensorboard`` (imported by the reference's utilities, not used here) is a stub.
"""

from __future__ import annotations

import dataclasses
import sys
import types

import torch
import torch.nn.functional as F

from bench.api import load_card, load_real, pick_device, write_record
from bench.reports.fidelity import check_parser, import_reference, write_table
from distillbench_methods import gtn

REFERENCE = "dm-medvedev/EfficientDistillation@7ebe4b9"
SHIMS = [
    "gmpc_train re-stated as a driver (real batches and noise from the suite's seeds)",
    "the learner's generated batch class-major (the reference interleaves labels x % 10)",
    "the suite's generator and learner weights copied into MNISTTeacher and get_network",
    "torch.utils.tensorboard stubbed (imported by my_experiments/utils.py, unused here)",
]
# the suite's generator layers -> the reference's MNISTTeacher's
TEACHER_NAMES = {
    "fc1": "fc1",
    "bn1": "bn_fc1",
    "fc2": "fc2",
    "bn2": "bn_fc2",
    "conv1": "conv1",
    "bn3": "bn_conv1",
    "conv2": "conv2",
    "bn4": "bn_conv2",
}


def reference_teacher(ref, generator: gtn.Generator, config: gtn.GTNConfig, ipc: int):
    """The reference's ``MNISTTeacher`` of ``gm-gtn/exp5`` with ``generator``'s weights and
    batch-norm statistics, and its Adam optimiser (lr 0.01)."""
    teacher_config = ref.teacher.MNISTTeacherConfig(
        input_size=config.noise_dim,
        output_size=28,
        fc1_size=config.fc_width,
        fc2_filters=config.feature_maps,
        conv1_filters=config.conv_channels,
        target_classes=10,
        input_count=1,
        batch_size=10 * ipc,
        input_type=ref.teacher.TeacherInputType.RANDOM,
    )
    teacher = ref.teacher.MNISTTeacher(teacher_config, device="cpu")
    state = {}
    for name, value in generator.state_dict().items():
        layer, _, rest = name.partition(".")
        state[f"{TEACHER_NAMES[layer]}.{rest}"] = value.clone()
    teacher.load_state_dict(state)
    return teacher, torch.optim.Adam(teacher.parameters(), lr=config.lr_generator)


def reference_iteration(ref, teacher, optimizer_teacher, learner_weights, real, config, ipc, rng):
    """One reference epoch of ``gmpc_train(outer_steps, learner_steps, normalize=True)``
    (``my_experiments/learning_loop.py`` lines 89-148 at 7ebe4b9) on the suite's draws; returns
    the mean matching loss over the outer steps."""
    learner = ref.gm_utils.get_network("ConvNet", channel=1, num_classes=10, im_size=(28, 28))
    names = list(learner.state_dict())
    learner.load_state_dict(dict(zip(names, learner_weights.values(), strict=True)))
    learner.train()
    optim = torch.optim.SGD(
        learner.parameters(), lr=config.lr_learner, momentum=config.momentum_learner
    )
    losses = []
    for _ in range(config.outer_loop):
        teacher.train()
        real_batches = dict(enumerate(real.per_class(rng)))
        grad_diff = 0.0
        for class_nm in real_batches:
            real_x = real_batches[class_nm]
            real_y = torch.ones(len(real_x), dtype=torch.int64) * class_nm
            syn_y = torch.full((ipc,), class_nm)
            noise = torch.rand(ipc, config.noise_dim, generator=rng)
            syn_x, _ = teacher(noise, F.one_hot(syn_y, 10).float())
            mloss, _, _ = ref.utils.gm_loss(real_x, real_y, syn_x, syn_y, learner, True)
            grad_diff += mloss
        grad_diff /= len(real_batches)
        losses.append(grad_diff.item())
        optimizer_teacher.zero_grad()
        grad_diff.backward()
        torch.nn.utils.clip_grad_norm_(teacher.parameters(), max_norm=10)
        optimizer_teacher.step()
        with torch.no_grad():
            teacher.eval()
            syn_y = torch.arange(10).repeat_interleave(ipc)
            noise = torch.rand(len(syn_y), config.noise_dim, generator=rng)
            syn_x, _ = teacher(noise, F.one_hot(syn_y, 10).float())
        for _ in range(config.inner_loop):
            optim.zero_grad()
            loss = F.cross_entropy(learner(syn_x), syn_y)
            loss.backward()
            optim.step()
        with torch.no_grad():
            learner.eval()  # as the reference: the learner stays in eval mode from here on
            learner(syn_x)
    return sum(losses) / len(losses)


def generator_state(module: torch.nn.Module, rename: dict[str, str] | None = None):
    """Parameters and batch-norm statistics by the suite's layer names, as float tensors."""
    back = {v: k for k, v in (rename or {}).items()}
    out = {}
    for name, value in module.state_dict().items():
        layer, _, rest = name.partition(".")
        out[f"{back.get(layer, layer)}.{rest}"] = value.detach().clone().float()
    return out


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument(
        "--batch-real",
        type=int,
        default=32,
        help="real images per class (the paper's 256 "
        "takes 3 minutes an iteration per side on one core)",
    )
    args = parser.parse_args()

    # imported by the reference's utilities, not used here
    sys.modules.setdefault("torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=None))
    ref = import_reference(
        args.reference,
        utils="my_experiments.utils",
        gm_utils="gm.utils",
        teacher="gtn.models.mnist_teacher",
    )
    device = pick_device("cpu")
    ipc = 10
    # gm-gtn/exp5 (the faithful recipe), with fewer real images per class for a CPU
    config = dataclasses.replace(gtn.GTNGMConfig(), select_every=0, batch_real=args.batch_real)
    real = load_real(load_card("mnist"), args.data_root, "train")
    suite = gtn.GTNTraining(config, real, ipc, gtn.STREAMS.seed(args.seed, "generator"), device)
    teacher, optimizer_teacher = reference_teacher(ref, suite.generator, config, ipc)
    rows = []
    for it in range(args.iterations):
        seed = gtn.STREAMS.seed(args.seed, "iteration", it)
        learner_seed = gtn.STREAMS.seed(args.seed, "learner", it)
        learner, _ = gtn.fresh_learner(config, real, learner_seed, device)
        loss_r = reference_iteration(
            ref,
            teacher,
            optimizer_teacher,
            learner.state_dict(),
            suite.real_batches,
            config,
            ipc,
            torch.Generator().manual_seed(seed),
        )
        loss_s = suite.iteration(seed, learner_seed)["distill/loss"]
        ours, theirs = generator_state(suite.generator), generator_state(teacher, TEACHER_NAMES)
        diff = max(float((ours[k] - theirs[k]).abs().max()) for k in ours)
        scale = max(float(v.abs().max()) for v in theirs.values())
        rows.append(
            {
                "iteration": it,
                "loss_reference": loss_r,
                "loss_suite": loss_s,
                "loss_rel_diff": abs(loss_s - loss_r) / max(abs(loss_r), 1e-12),
                "generator_max_abs_diff": diff,
                "images_rel_diff": diff / scale,
            }
        )
        print(f"iteration {it}: loss {loss_r:.6f} / {loss_s:.6f}, generator diff {diff:.2e}")
    write_record(
        args.out,
        "gtn-gm-ipc10",
        device,
        family="gtn-gm",
        recipe="gtn-gm-mnist",
        reference=REFERENCE,
        shims=SHIMS,
        ipc=ipc,
        iterations=args.iterations,
        outer_inner_loops=[config.outer_loop, config.inner_loop],
        batch_real=args.batch_real,
        seed=args.seed,
        compared="the generator's parameters and batch-norm statistics (images_rel_diff)",
        sides={"faithful": rows},
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
