"""Dataset Condensation with gradient matching (DC).

Zhao, Mopuri, Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021
(arXiv 2006.05929); reference code VICO-UoE/DatasetCondensation at commit 53f63a6
(``main.py`` with ``--method DC``, ``utils.match_loss``/``distance_wb``/``get_loops``).

The synthetic set S (``ipc`` images per class) is learned so that a network's gradients on S
match its gradients on the real set T, along the network's own training trajectory:

    min_S  E_{theta_0}  sum_{t=0}^{T-1}  sum_c  D( grad L(S_c; theta_t), grad L(T_c; theta_t) )
    theta_{t+1} = theta_t - eta_theta grad L(S; theta_t)                 (paper Eq. 9-10)

with D the layer-wise distance of paper Eq. 11: for every weight tensor, reshaped to
``[out, in * kh * kw]``, the sum over output units of ``1 - cos(row_syn, row_real)``
(biases and normalisation parameters are skipped, as in the reference ``distance_wb``).

Each outer iteration (``iterations``, K = 1000 in the paper) draws a fresh ConvNet-3, then
``outer_loop`` times: one SGD step on S (lr 0.1, momentum 0.5) for the per-class matching loss
on 256 real images per class, followed (except after the last) by ``inner_loop`` epochs of
training the network on S (SGD lr 0.01, no augmentation). ``outer_loop``/``inner_loop`` per ipc
are the reference's ``get_loops`` (1: 1/1, 10: 10/50, 50: 50/10).

Differences from the reference, none of which changes the maths: every random draw comes from
seeds derived from the run's seed (per iteration, so ``--resume`` reproduces an uninterrupted
run exactly); the matching loss is back-propagated class by class into the synthetic images
(the gradient of the sum is the sum of the gradients) instead of keeping all ten classes'
double-backward graphs alive at once.

DSA (Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021;
``main.py --method DSA``) is the same loop with ``DSAConfig``: class c's real and synthetic batch
augmented with one shared transform (DC's ``DiffAugment`` in its siamese mode, a seed per class
drawn from the iteration's stream where the reference reads the clock), every inner-loop
mini-batch augmented with per-call draws, and real initial images; registered as ``dsa``.
Checked side by side with ``main.py --method DSA`` (``scripts/reference_check/gm.py --method
dsa``): bit-identical after 10 outer iterations at ipc 1 and one at ipc 10.

Checked side by side with the reference's own functions (``scripts/reference_check/gm.py``,
``leaderboards/fidelity.md``): the synthetic images are bit-identical over 20 outer iterations
at ipc 1 and 2 at ipc 10. The long-run speed setting (``compile``: compiled real gradients, used
by paper runs on a CPU) sums in another order and parts from the reference's float trajectory
(3e-2 relative after 20 iterations): the same algorithm, not the same set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from bench.api import (
    NETWORKS,
    SPEED_ONLY,
    AfterIteration,
    ConfigError,
    DSADraws,
    DSAParams,
    EvaluateDuring,
    Kind,
    Method,
    OuterLoop,
    RealSet,
    SeedStreams,
    Stream,
    SyntheticSet,
    build_network,
    check_dsa_strategy,
    dsa_augment,
    require_learning_rates,
    require_positive,
    smallest_class,
)

# ALGO LOGIC: configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class GMConfig:
    """DC hyper-parameters; the defaults are the paper's and the reference code's."""

    iterations: int = 1000
    """outer iterations K: each starts from a freshly initialised network"""
    outer_loop: int | None = None
    """synthetic-set updates per outer iteration; None: reference ``get_loops(ipc)``"""
    inner_loop: int | None = None
    """network training epochs on S between updates; None: reference ``get_loops(ipc)``"""
    lr_img: float = 0.1
    """SGD learning rate of the synthetic images"""
    momentum_img: float = 0.5
    """SGD momentum of the synthetic images"""
    lr_net: float = 0.01
    """SGD learning rate of the network in the inner loop (no momentum)"""
    batch_real: int = 256
    """real images per class per matching step"""
    batch_train: int = 256
    """mini-batch size when training the network on S in the inner loop"""
    init: Literal["noise", "real"] = "noise"
    """initial synthetic images: Gaussian noise, or randomly drawn real images"""
    distance: Literal["layerwise", "mse", "cos"] = "layerwise"
    """gradient distance: paper Eq. 11 (reference ``dis_metric='ours'``), or plain MSE / cosine
    of the concatenated gradients (reference ``'mse'``/``'cos'``)"""
    model: str = "ConvNet"
    """network whose gradients are matched (ConvNet-3)"""
    matching: Literal["per_class", "batched"] = field(default="per_class", metadata=SPEED_ONLY)
    """how the per-class gradients are computed (speed only, the same loss and update):
    ``per_class`` one class after another as the reference; ``batched`` all classes in one
    ``torch.vmap`` of ``torch.func.grad`` (``batched_matching_step``)"""
    channels_last: bool = field(default=False, metadata=SPEED_ONLY)
    """``per_class`` matching in the ``channels_last`` memory format (speed only)"""
    compile: bool = field(default=False, metadata=SPEED_ONLY)
    """``per_class`` matching computes the real batches' gradients with one ``torch.compile``d
    ``torch.func.grad`` (speed only: fused kernels, the same maths; compiling takes ~30 s)"""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``bf16``: the matching step's forward and backward passes under bfloat16 autocast
    (CPU or GPU), the distance and the image update in float32. Changes the numbers (the
    matching loss stays within 1% of float32's, tested), so a bf16 run is off the paper's
    protocol"""

    def __post_init__(self) -> None:
        if self.model not in NETWORKS:
            raise ConfigError(
                f"method.model: unknown network {self.model!r}; available: {', '.join(NETWORKS)}"
            )
        require_positive(
            self, ("iterations", "outer_loop", "inner_loop", "batch_real", "batch_train"), "method"
        )
        require_learning_rates(self, "method")
        if self.matching == "batched" and (self.channels_last or self.compile):
            raise ConfigError(
                "method.channels_last and method.compile apply to per_class matching only; "
                "drop them or set method.matching=per_class"
            )


@dataclass(frozen=True)
class DSAConfig(GMConfig):
    """DSA (Zhao & Bilen, ICML 2021): DC's gradient matching with differentiable siamese
    augmentation, reference ``main.py --method DSA --init real --dsa_strategy ...`` at 53f63a6.
    Each class's real and synthetic batch get one shared transform (DC's ``DiffAugment`` in its
    siamese mode, one seed per class), and every mini-batch of the inner loop is augmented too
    (its per-call mode, ``epoch(.., aug=True)``); the rest is DC's."""

    init: Literal["noise", "real"] = "real"
    """the README's command (``--init real``)"""
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    """DSA parts joined by ``"_"``; the README: ``color_crop_cutout_scale_rotate`` for the digit
    datasets (MNIST, SVHN), this one (with flip) for FashionMNIST and CIFAR"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_dsa_strategy(self.dsa_strategy, "method.dsa_strategy")
        if self.matching == "batched":
            raise ConfigError("method.matching=batched does not augment: DSA needs per_class")


DC_DSA = DSAParams(align_corners=False)
"""DC's ``ParamDiffAug`` with its ``DiffAugment``'s unaligned corners (DSA's and DM's)"""


def siamese_pair(
    real: torch.Tensor, synthetic: torch.Tensor, seed: int, strategy: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One class's real ``[B, C, H, W]`` and synthetic ``[ipc, C, H, W]`` batch augmented with
    one shared transform: DC's ``DiffAugment(.., seed=seed)`` on each (siamese mode, DC_DSA)."""
    return (
        dsa_augment(real, DSADraws.siamese(seed), strategy, DC_DSA),
        dsa_augment(synthetic, DSADraws.siamese(seed), strategy, DC_DSA),
    )


def dsa_strategy(config: GMConfig) -> str | None:
    """The DSA strategy of ``config`` (a ``DSAConfig`` or ``DMConfig``), None for DC's and
    for ``"none"``."""
    strategy = getattr(config, "dsa_strategy", None)
    return None if strategy in (None, "", "none", "None") else strategy


_REFERENCE_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loops_for(ipc: int, config: GMConfig) -> tuple[int, int]:
    """(outer_loop, inner_loop): the config's if set, else the reference's ``get_loops(ipc)``.

    Raises:
        ConfigError: ``ipc`` has no reference value and the config sets none.
    """
    if config.outer_loop is not None and config.inner_loop is not None:
        return config.outer_loop, config.inner_loop
    if ipc not in _REFERENCE_LOOPS:
        raise ConfigError(
            f"the reference defines no outer/inner loops for ipc={ipc} (only "
            f"{sorted(_REFERENCE_LOOPS)}); set method.outer_loop and method.inner_loop"
        )
    outer, inner = _REFERENCE_LOOPS[ipc]
    return config.outer_loop or outer, config.inner_loop or inner


# ALGO LOGIC: gradient distances (paper Eq. 11; reference utils.match_loss) ------------------


def _layer_distance(g_syn: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """Sum over classes and output units of ``1 - cos`` for one weight tensor's per-class
    gradients ``[K, out, ...]``; 0 for per-class 1-D tensors ``[K, n]``."""
    if g_real.ndim == 2:  # biases, norm scales/shifts: skipped by the reference
        return g_syn.new_zeros(())
    rows_syn = g_syn.flatten(2)
    rows_real = g_real.flatten(2)
    cos = (rows_syn * rows_real).sum(-1) / (rows_syn.norm(dim=-1) * rows_real.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def gradient_distance(
    g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor], kind: str = "layerwise"
) -> torch.Tensor:
    """Distance between two lists of per-parameter gradients (same shapes, same order).

    ``layerwise`` (paper Eq. 11) is zero for equal gradients (up to the 1e-6 of the reference's
    denominator) and invariant to positive scaling of either side; ``mse`` is the summed
    squared difference; ``cos`` is ``1 - cos`` of the concatenated vectors. One class's case of
    ``batched_gradient_distance``.

    Returns:
        scalar tensor.
    Raises:
        ValueError: the lists differ in length or shapes, or ``kind`` is unknown.
    """
    if len(g_syn) != len(g_real) or any(
        a.shape != b.shape for a, b in zip(g_syn, g_real, strict=True)
    ):
        raise ValueError("gradient lists must hold tensors of the same shapes in the same order")

    def one_class(grads: Sequence[torch.Tensor]) -> dict[int, torch.Tensor]:
        return {i: g.unsqueeze(0) for i, g in enumerate(grads)}

    return batched_gradient_distance(one_class(g_syn), one_class(g_real), kind)


def batched_gradient_distance(
    g_syn: dict[Any, torch.Tensor], g_real: dict[Any, torch.Tensor], kind: str = "layerwise"
) -> torch.Tensor:
    """``gradient_distance`` of every class at once, summed over classes: the values of both
    dicts are per-class gradients ``[K, *parameter shape]`` in the same parameter order.

    Returns:
        scalar tensor.
    Raises:
        ValueError: ``kind`` is unknown.
    """
    if kind == "layerwise":
        return torch.stack([_layer_distance(g_syn[k], real) for k, real in g_real.items()]).sum()
    flat_syn = torch.cat([g.flatten(1) for g in g_syn.values()], dim=1)
    flat_real = torch.cat([g.flatten(1) for g in g_real.values()], dim=1)
    if kind == "mse":
        return ((flat_syn - flat_real) ** 2).sum()
    if kind == "cos":
        dot = (flat_syn * flat_real).sum(1)
        return (1 - dot / (flat_syn.norm(dim=1) * flat_real.norm(dim=1) + 1e-6)).sum()
    raise ValueError(f"unknown gradient distance {kind!r}; known: layerwise, mse, cos")


def batched_matching_step(
    net: torch.nn.Module,
    images: torch.Tensor,
    ipc: int,
    real_batches: torch.Tensor,
    kind: str = "layerwise",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matching loss of every class and its gradient with respect to the synthetic images,
    all classes in one ``torch.vmap`` of ``torch.func.grad`` (one batched computation instead of
    a Python loop over classes; the same loss as summing ``gradient_distance`` class by class).

    Args:
        net: the network whose gradients are matched (its current parameters).
        images: synthetic images ``[K * ipc, C, H, W]``, class-major.
        ipc: images per class.
        real_batches: one real batch per class ``[K, B, C, H, W]``.
        kind: gradient distance (see ``gradient_distance``).

    Returns:
        (loss summed over classes, a scalar; its gradient ``[K * ipc, C, H, W]``).
    """
    from torch.func import functional_call, grad, grad_and_value, vmap

    params = {name: p.detach() for name, p in net.named_parameters()}
    buffers = dict(net.named_buffers())
    classes = real_batches.shape[0]

    def class_loss(p, x, y):
        return F.cross_entropy(functional_call(net, (p, buffers), (x,)), y)

    per_class_grad = vmap(grad(class_loss), in_dims=(None, 0, 0))
    real_labels = torch.arange(classes, device=images.device)[:, None]
    g_real = per_class_grad(
        params, real_batches, real_labels.expand(classes, real_batches.shape[1])
    )

    def matching_loss(synthetic):
        g_syn = per_class_grad(
            params, synthetic.view(classes, ipc, *synthetic.shape[1:]), real_labels.expand(-1, ipc)
        )
        return batched_gradient_distance(g_syn, g_real, kind)

    gradient, loss = grad_and_value(matching_loss)(images.detach())
    return loss.detach(), gradient


class RealGradients:
    """Gradients of the loss of a real batch with respect to a network's parameters (the
    matching target, no graph kept): eager ``torch.autograd.grad``, or with ``compiled`` one
    ``torch.compile``d ``torch.func.grad`` built on the first network and reused for every
    later one of the same architecture (the parameters are its inputs, so a fresh network
    does not recompile).
    """

    def __init__(self, compiled: bool = False) -> None:
        self.compiled = compiled
        self._function = None

    def __call__(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list:
        """Per-parameter gradients (``net.parameters()`` order) of the mean cross-entropy of
        ``net`` on ``x [B, C, H, W]`` with labels ``y [B]``."""
        if not self.compiled:
            loss = F.cross_entropy(net(x), y)
            return [g.detach() for g in torch.autograd.grad(loss, list(net.parameters()))]
        if self._function is None:
            from torch.func import functional_call, grad

            template = net

            def loss_of(params, x, y):
                return F.cross_entropy(functional_call(template, params, (x,)), y)

            self._function = torch.compile(grad(loss_of), dynamic=False)
        params = {name: p.detach() for name, p in net.named_parameters()}
        return list(self._function(params, x, y).values())


def matching_step(
    net: torch.nn.Module,
    images: torch.Tensor,
    ipc: int,
    real_batches: torch.Tensor,
    config: GMConfig,
    real_gradients: RealGradients | None = None,
    dsa_seeds: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One evaluation of DC's matching loss, summed over classes, and its gradient with respect
    to the synthetic images, as ``config`` says to compute it (``matching``,
    ``channels_last``, ``compile`` through ``real_gradients``, ``precision``; for a
    ``DSAConfig``, class ``c``'s real and synthetic batch augmented with one siamese transform
    from ``dsa_seeds[c]``).

    Args:
        net: the network whose gradients are matched (its current parameters); for
            ``channels_last`` already converted to that memory format.
        images: synthetic images ``[K * ipc, C, H, W]``, class-major (a leaf; not modified).
        ipc: images per class.
        real_batches: one real batch per class ``[K, B, C, H, W]``.
        config: DC hyper-parameters.
        real_gradients: how the real side's gradients are computed (default: eager).
        dsa_seeds: one DSA seed per class (``DSAConfig`` only).

    Returns:
        (loss, a scalar float32 tensor; its gradient ``[K * ipc, C, H, W]``).
    """
    strategy = dsa_strategy(config)
    autocast = torch.autocast(
        images.device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"
    )
    if config.matching == "batched":
        with autocast:
            return batched_matching_step(net, images, ipc, real_batches, config.distance)
    real_gradients = real_gradients or RealGradients()
    params = list(net.parameters())
    synthetic = images.detach().requires_grad_(True)
    total = synthetic.new_zeros(())
    for c in range(real_batches.shape[0]):
        x_real, x_syn = real_batches[c], synthetic[c * ipc : (c + 1) * ipc]
        if strategy is not None:
            x_real, x_syn = siamese_pair(x_real, x_syn, dsa_seeds[c], strategy)
        if config.channels_last:
            x_real = x_real.contiguous(memory_format=torch.channels_last)
            x_syn = x_syn.contiguous(memory_format=torch.channels_last)
        with autocast:
            g_real = real_gradients(
                net, x_real, torch.full((len(x_real),), c, device=x_real.device)
            )
            loss_syn = F.cross_entropy(net(x_syn), torch.full((ipc,), c, device=x_syn.device))
            g_syn = torch.autograd.grad(loss_syn, params, create_graph=True)
        # the distance in float32; back-propagated class by class (the gradient of the sum is
        # the sum of the gradients) so only one class's double-backward graph is alive at once
        distance = gradient_distance(
            [g.float() for g in g_syn], [g.float() for g in g_real], config.distance
        )
        distance.backward()
        total += distance.detach()
    return total, synthetic.grad


# ALGO LOGIC: distillation -----------------------------------------------------------------

# The seed streams of a synthetic set's seed (bench.api.SeedStreams checks them against the
# runner's): the initial images, each outer iteration's real batches, each iteration's network.
STREAMS = SeedStreams(
    init=Stream(0), iteration=Stream(1, ("iteration",)), network=Stream(2, ("iteration",))
)


def initial_synthetic_images(
    real_by_class: list[torch.Tensor], ipc: int, config: GMConfig, seed: int
) -> torch.Tensor:
    """``[K * ipc, C, H, W]`` initial images, class-major: noise ~ N(0, 1) or real draws, as
    ``config.init`` says (any config with that field: DC's, MTT's). ``real_by_class`` holds
    each class's real images ``[N_c, C, H, W]``; every draw comes from ``seed``."""
    generator = torch.Generator().manual_seed(STREAMS.seed(seed, "init"))
    shape = (len(real_by_class) * ipc, *real_by_class[0].shape[1:])
    if config.init == "noise":
        return torch.randn(shape, generator=generator)
    picks = [
        images[torch.randperm(len(images), generator=generator)[:ipc].to(images.device)].cpu()
        for images in real_by_class
    ]
    return torch.cat(picks)


def draw_real_batches(
    real_by_class: list[torch.Tensor], batch: int, generator: torch.Generator
) -> torch.Tensor:
    """One real batch per class, ``[K, batch, C, H, W]`` on the pools' device: from each
    class's images ``[N_c, C, H, W]`` the first ``batch`` of ``torch.randperm(N_c)``, class
    after class from ``generator`` (the reference's ``get_images(c, batch_real)``, main.py at
    53f63a6, draws a random permutation likewise with numpy's global RNG)."""
    picks = [torch.randperm(len(pool), generator=generator)[:batch] for pool in real_by_class]
    return torch.stack(
        [pool[pick.to(pool.device)] for pool, pick in zip(real_by_class, picks, strict=True)]
    )


def draw_dsa_seeds(classes: int, generator: torch.Generator) -> list[int]:
    """One DSA seed per class, integers in ``[0, 100000)`` as the reference's
    ``int(time.time() * 1000) % 100000``, drawn from ``generator``."""
    return [int(torch.randint(100000, (1,), generator=generator)) for _ in range(classes)]


def distill(
    real: RealSet,
    ipc: int,
    config: GMConfig,
    seed: int,
    device: torch.device,
    *,
    resume: dict[str, Any] | None = None,
    after_iteration: AfterIteration | None = None,
    evaluate: EvaluateDuring | None = None,
) -> SyntheticSet:
    """Learn a synthetic set of ``ipc`` images per class from ``real`` by gradient matching.

    Args:
        real: the real training split, images ``[N, C, H, W]`` normalised, labels ``[N]``.
        ipc: images per class.
        config: DC hyper-parameters.
        seed: seed of this synthetic set; every draw is derived from it.
        device: where to compute.
        resume: a state returned by ``after_iteration``'s ``state()`` callable (``iteration``,
            ``images``, ``optimizer``); distillation continues from there.
        after_iteration: called after every outer iteration ``it`` (0-based) as
            ``after_iteration(it, {"distill/loss": ...}, state)``; ``state()`` returns the
            resumable state. Used by the runner to log, show progress and checkpoint.
        evaluate: unused (DC evaluates only the final set).

    Returns:
        SyntheticSet with images ``[K * ipc, C, H, W]`` float32 and labels ``[K * ipc]`` int64,
        class-major (``[0]*ipc + [1]*ipc + ...``).

    Raises:
        DivergedError: the matching loss became NaN/inf; ``error.last_good`` holds the synthetic
            set from before the failing step.
        ConfigError: no outer/inner loops for this ipc.
    """
    card = real.card
    outer_loop, inner_loop = loops_for(ipc, config)
    classes = range(card.num_classes)
    real_by_class = [real.images[real.labels == c].to(device) for c in classes]
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    labels_dev = labels.to(device)

    real_gradients = RealGradients(compiled=config.compile)
    strategy = dsa_strategy(config)
    images = initial_synthetic_images(real_by_class, ipc, config, seed).to(device)
    images.requires_grad_(True)
    optimizer_img = torch.optim.SGD([images], lr=config.lr_img, momentum=config.momentum_img)
    if resume is not None:
        with torch.no_grad():
            images.copy_(resume["images"].to(device))
        optimizer_img.load_state_dict(resume["optimizer"])
    loop = OuterLoop(
        config.iterations,
        resume,
        after_iteration,
        synthetic_set=lambda: SyntheticSet(
            images=images.detach().cpu().clone(),
            labels=labels.clone(),
            method="dsa" if isinstance(config, DSAConfig) else "gm",
            dataset=card.name,
            ipc=ipc,
            seed=seed,
        ),
        state=lambda: {
            "images": images.detach().cpu().clone(),
            "optimizer": optimizer_img.state_dict(),
        },
    )
    for it in loop:
        generator = torch.Generator().manual_seed(STREAMS.seed(seed, "iteration", it))
        net = (
            build_network(
                config.model,
                card.channels,
                card.num_classes,
                card.image_size,
                STREAMS.seed(seed, "network", it),
            )
            .to(device)
            .train()
        )
        if config.channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer_net = torch.optim.SGD(net.parameters(), lr=config.lr_net)
        loss_sum = 0.0
        for ol in range(outer_loop):
            # --- update the synthetic set: match per-class gradients ---
            real_batches = draw_real_batches(real_by_class, config.batch_real, generator)
            # DSA: one seed per class for its siamese transform (the reference's clock-driven
            # int(time.time() * 1000) % 100000); none drawn for DC, whose stream is unchanged
            seeds = None if strategy is None else draw_dsa_seeds(len(classes), generator)
            loss, images.grad = matching_step(
                net, images, ipc, real_batches, config, real_gradients, seeds
            )
            step_loss = loss.item()
            loop.check_finite(
                f"matching loss at outer iteration {it} (outer loop {ol})",
                step_loss,
                images.grad,
                hint="lower method.lr_img or check the data",
            )
            optimizer_img.step()
            loss_sum += step_loss
            if ol == outer_loop - 1:
                break
            # --- inner loop: train the network on the synthetic set (DC: no augmentation;
            # DSA: every mini-batch, per-call draws, as the reference's epoch(.., aug=True)) ---
            train_images, train_labels = images.detach().clone(), labels_dev
            for _ in range(inner_loop):
                order = torch.randperm(len(train_labels), generator=generator).to(device)
                for b in range(0, len(order), config.batch_train):
                    batch = order[b : b + config.batch_train]
                    x = train_images[batch]
                    if strategy is not None:
                        x = dsa_augment(x, generator, strategy, DC_DSA)
                    loss = F.cross_entropy(net(x), train_labels[batch])
                    optimizer_net.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer_net.step()
        loop.report(it, {"distill/loss": loss_sum / (card.num_classes * outer_loop)})
    return loop.synthetic_set()


def check_data(real: RealSet, ipc: int | None, config: GMConfig) -> None:
    """Every class must hold ``batch_real`` images (the real batches are stacked per class).

    Raises:
        ConfigError: naming the smallest class's size.
    """
    smallest = smallest_class(real)
    if config.batch_real > smallest:
        raise ConfigError(
            f"method.batch_real={config.batch_real} is more than the smallest class of "
            f"{real.card.display_name} holds; set at most {smallest}"
        )


DSA = Method(
    name="dsa",
    config_class=DSAConfig,
    kind=Kind.DISTILLED,
    distill=distill,
    check_data=check_data,
    description="Dataset Condensation with differentiable siamese augmentation (ICML 2021)",
)

METHOD = Method(
    name="gm",
    config_class=GMConfig,
    kind=Kind.DISTILLED,
    distill=distill,
    check_data=check_data,
    speed_benchmark="distillbench_methods.gm_speed:main",
    description="Dataset Condensation with gradient matching (Zhao et al., ICLR 2021)",
    # the real batches' gradients compiled: 1.2-1.35x per outer iteration on a 2-core CPU,
    # sets within float summation order of the eager loop's (leaderboards/benchmarks/gm-*.json)
    long_run_speed={"compile": True},
)
