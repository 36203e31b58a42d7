"""Differential check of the three GTN variants: the suite's faithful generator update
(``distillbench_methods.gtn``, ``GTNTraining``) and the reference's own training step, re-stated
here step by step with the reference's ``MNISTTeacher``, ``get_network`` and its optimisers, from
the same generator and learner weights, the same real batches and the same noise:

- ``--variant gm``: ``gmpc_train`` with the reference's ``gm_loss`` (an iteration: a fresh
  learner, ``outer_loop`` generator updates each followed by ``inner_loop`` learner steps);
- ``--variant ift``: ``ift_train`` with the reference's ``MetaOptimizer`` and ``Hypergrad``
  (an iteration: a fresh learner, ``inner_steps`` learner steps, one hypergradient update);
- ``--variant unrolled``: ``higher_train`` with ``higher``'s differentiable SGD (an iteration:
  one generator update through ``inner_steps`` unrolled learner steps).

Per iteration it compares the loss and the generator's parameters and batch-norm statistics.

    python scripts/reference_check/gtn.py --reference DIR [--variant gm|ift|unrolled]
        [--iterations 2 --batch-real 32] [--data-root ../shared/datasets]
        [--out leaderboards/fidelity]

``--reference`` is a checkout of dm-medvedev/EfficientDistillation@7ebe4b9; its modules are
imported from there, unchanged; the unrolled variant also needs ``higher`` importable (the
reference's dependency: ``pip install --target DIR higher==0.2.1`` and ``PYTHONPATH=DIR``).
Writes ``<out>/gtn-<variant>-ipc10-<commit>.json`` and rewrites ``leaderboards/fidelity.md``.

Shims (the reference's driver and inputs, not its maths): each training step is re-stated so
that the real batches are the suite's draws (the reference fills them from a shuffling
``DataLoader``) and every noise batch is the suite's draw (the reference's ``prepare_data`` draws
from torch's global RNG: the same distribution); the learner's batch is class-major (the
reference interleaves the labels; a whole-batch step does not depend on the order); the suite's
generator and learner weights are copied into the reference's ``MNISTTeacher`` and
``get_network`` ConvNet; ``torch.utils.tensorboard`` (imported by the reference's utilities, not
used here) is a stub. IFT's training loss L_T is computed on the last learner step's noise, as
the suite does (the reference draws a new batch: a difference ``distillbench_methods.gtn``
lists, the same distribution).
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
    "the training step re-stated as a driver (real batches and noise from the suite's seeds)",
    "the learner's generated batch class-major (the reference interleaves labels x % 10)",
    "the suite's generator and learner weights copied into MNISTTeacher and get_network",
    "torch.utils.tensorboard stubbed (imported by my_experiments/utils.py, unused here)",
]
ORDER_SHIM = (
    "the teacher's parameters handed to its optimiser step and clipping in the suite's order "
    "(MNISTTeacher registers its layers in another; the order changes only the float summation "
    "of the clipping norm: 6e-8 after two IFT updates otherwise)"
)
IFT_SHIM = "L_T on the last learner step's noise, as the suite (the reference draws anew)"
RECIPES = {"gm": "gtn-gm-mnist", "ift": "gtn-ift-mnist", "unrolled": "gtn-unrolled-mnist"}
"""the faithful recipe each variant's check runs the settings of"""
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
    """The reference's ``MNISTTeacher`` of the launch scripts with ``generator``'s weights and
    batch-norm statistics, and its optimiser: Adam (lr 0.01), wrapped in ``MetaOptimizer`` for
    IFT (``ift-gtn/exp3``: ``hpo_lr``, ``truncate_iter``, ``max_grad_norm=4``)."""
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
    adam = torch.optim.Adam(in_suite_order(teacher, generator), lr=config.lr_generator)
    if isinstance(config, gtn.GTNIFTConfig):
        meta = ref.ift_optim.MetaOptimizer(
            adam,
            hpo_lr=config.neumann_lr,
            truncate_iter=config.neumann_terms,
            max_grad_norm=config.grad_clip,
        )
        return teacher, meta
    return teacher, adam


def in_suite_order(teacher, generator: gtn.Generator) -> list[torch.nn.Parameter]:
    """The teacher's parameters in the order of the suite generator's (ORDER_SHIM)."""
    theirs = dict(teacher.named_parameters())
    out = []
    for name, _ in generator.named_parameters():
        layer, _, rest = name.partition(".")
        out.append(theirs[f"{TEACHER_NAMES[layer]}.{rest}"])
    return out


def reference_learner(ref, learner_weights, config):
    """The reference's ``get_network('ConvNet')`` with the suite's learner weights, in train
    mode, and its SGD (``LearnerConfig``: lr 0.02, momentum 0.5)."""
    learner = ref.gm_utils.get_network("ConvNet", channel=1, num_classes=10, im_size=(28, 28))
    names = list(learner.state_dict())
    learner.load_state_dict(dict(zip(names, learner_weights.values(), strict=True)))
    learner.train()
    optim = torch.optim.SGD(
        learner.parameters(), lr=config.lr_learner, momentum=config.momentum_learner
    )
    return learner, optim


def teacher_batch(teacher, labels, config, rng):
    """``prepare_data``'s teacher output for class-major ``labels`` from the suite's noise (in
    the teacher's current mode; eval mode without gradients, as ``prepare_data``)."""
    noise = torch.rand(len(labels), config.noise_dim, generator=rng)
    with torch.set_grad_enabled(teacher.training):
        images, _ = teacher(noise, F.one_hot(labels, 10).float())
    return images


def reference_gm(ref, teacher, optimizer_teacher, learner_weights, real, config, ipc, rng):
    """One reference epoch of ``gmpc_train(outer_steps, learner_steps, normalize=True)``
    (``my_experiments/learning_loop.py`` lines 89-148 at 7ebe4b9) on the suite's draws; returns
    the mean matching loss over the outer steps."""
    learner, optim = reference_learner(ref, learner_weights, config)
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
        torch.nn.utils.clip_grad_norm_(optimizer_teacher.param_groups[0]["params"], max_norm=10)
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


def reference_ift(ref, teacher, meta_optimizer, learner_weights, real, config, ipc, rng):
    """One reference epoch of ``ift_train(max_steps=inner_steps)``
    (``my_experiments/learning_loop.py`` lines 196-260 at 7ebe4b9) on the suite's draws, in the
    suite's order; returns the validation loss."""
    learner, optim = reference_learner(ref, learner_weights, config)
    labels = torch.arange(10).repeat_interleave(ipc)
    teacher.eval()
    norm0 = None
    for _ in range(config.inner_steps):
        noise_state = rng.get_state()
        syn_x = teacher_batch(teacher, labels, config, rng)
        loss = F.cross_entropy(learner(syn_x), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
        norm = sum(p.grad.data.norm(2) ** 2 for p in learner.parameters())
        if norm0 is None:
            norm0 = norm
        if norm < norm0 * config.inner_tolerance:
            break
    teacher.train()
    rng.set_state(noise_state)  # IFT_SHIM
    train_loss = F.cross_entropy(learner(teacher_batch(teacher, labels, config, rng)), labels)
    real_x, real_y = real.mixed(rng)
    validation_loss = F.cross_entropy(learner(real_x), real_y)
    ordered = meta_optimizer.meta_optimizer.param_groups[0]["params"]  # ORDER_SHIM
    meta_optimizer.step(train_loss, validation_loss, list(learner.parameters()), ordered)
    return validation_loss.item()


def reference_unrolled(ref, teacher, optimizer_teacher, learner_weights, real, config, ipc, rng):
    """One reference epoch of ``higher_train(learner_steps=inner_steps)``
    (``my_experiments/learning_loop.py`` lines 150-194 at 7ebe4b9) on the suite's draws, in the
    suite's order (the real batch first); returns the meta loss."""
    import higher

    learner, optim = reference_learner(ref, learner_weights, config)
    labels = torch.arange(10).repeat_interleave(ipc)
    real_x, real_y = real.mixed(rng)
    teacher.train()
    optimizer_teacher.zero_grad()
    with higher.innerloop_ctx(learner, optim) as (flearner, diffopt):
        for _ in range(config.inner_steps):
            syn_x = teacher_batch(teacher, labels, config, rng)
            diffopt.step(F.cross_entropy(flearner(syn_x), labels))
        loss = F.cross_entropy(flearner(real_x), real_y)
        loss.backward()
    ordered = optimizer_teacher.param_groups[0]["params"]  # ORDER_SHIM
    torch.nn.utils.clip_grad_norm_(ordered, max_norm=config.grad_clip)
    optimizer_teacher.step()
    return loss.item()


VARIANTS = {
    "gm": (gtn.GTNGMConfig, reference_gm),
    "ift": (gtn.GTNIFTConfig, reference_ift),
    "unrolled": (gtn.GTNUnrolledConfig, reference_unrolled),
}
"""variant -> (the suite's config, the reference's step re-stated)"""


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
    parser.add_argument("--variant", choices=list(VARIANTS), default="gm")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument(
        "--batch-real",
        type=int,
        default=None,
        help="GM: real images per class (default 32: the paper's 256 takes 3 minutes an "
        "iteration per side on one core); IFT, unrolled: the real batch (default: the paper's)",
    )
    args = parser.parse_args()

    # imported by the reference's utilities, not used here
    sys.modules.setdefault("torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=None))
    ref = import_reference(
        args.reference,
        utils="my_experiments.utils",
        gm_utils="gm.utils",
        teacher="gtn.models.mnist_teacher",
        ift_optim="ift.optim",
    )
    device = pick_device("cpu")
    ipc = 10
    config_class, reference_step = VARIANTS[args.variant]
    # the faithful recipe's settings (selection aside: it tests generators, it does not train)
    config = config_class(select_every=0)
    if args.batch_real or args.variant == "gm":
        config = dataclasses.replace(config, batch_real=args.batch_real or 32)
    real = load_real(load_card("mnist"), args.data_root, "train")
    suite = gtn.GTNTraining(config, real, ipc, gtn.STREAMS.seed(args.seed, "generator"), device)
    teacher, optimizer_teacher = reference_teacher(ref, suite.generator, config, ipc)
    rows = []
    for it in range(args.iterations):
        seed = gtn.STREAMS.seed(args.seed, "iteration", it)
        learner_seed = gtn.STREAMS.seed(args.seed, "learner", it)
        learner, _ = gtn.fresh_learner(config, real, learner_seed, device)
        loss_r = reference_step(
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
    if args.variant == "gm":
        steps = {"outer_inner_loops": [config.outer_loop, config.inner_loop]}
    else:
        steps = {"inner_steps": config.inner_steps}
    write_record(
        args.out,
        f"gtn-{args.variant}-ipc10",
        device,
        family=f"gtn-{args.variant}",
        recipe=RECIPES[args.variant],
        reference=REFERENCE,
        shims=SHIMS + [ORDER_SHIM] + ([IFT_SHIM] if args.variant == "ift" else []),
        ipc=ipc,
        iterations=args.iterations,
        **steps,
        batch_real=config.batch_real,
        seed=args.seed,
        compared="the generator's parameters and batch-norm statistics (images_rel_diff)",
        sides={"faithful": rows},
    )
    print(f"wrote {write_table(args.out)}")


if __name__ == "__main__":
    main()
