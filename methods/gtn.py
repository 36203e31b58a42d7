"""Generative teaching networks (GTN) trained by gradient matching, implicit differentiation or
unrolled back-propagation.

Medvedev, D'yakonov, "Learning to Generate Synthetic Training Data using Gradient Matching and
Implicit Differentiation", AIST 2021 (arXiv 2203.08559); reference code
dm-medvedev/EfficientDistillation at commit 7ebe4b9, the paper-era one (``gtn/models/
mnist_teacher.py``, ``my_experiments/learning_loop.py``: ``gmpc_train``, ``ift_train``,
``higher_train``; ``ift/implicit_diff.py``; launch scripts ``gm-gtn/exp5``, ``ift-gtn/exp3``,
``higher-gtn/exp3``; ``look_for_results.py``, ``generalization.py``). The later 64cf463 changes
only the evaluation, and breaks it (``evaluate_net`` tests ``ep in epoch_to_eval`` with its
default ``None``). GTN is Such et al.,
"Generative Teaching Networks", ICML 2020; IFT is Lorraine, Vicol, Duvenaud, "Optimizing Millions
of Hyperparameters by Implicit Differentiation", AISTATS 2020 (code AvivNavon/AuxiLearn).

A conditional generator G (uniform noise z in [0, 1)^64 and a one-hot label -> one image) is
trained so that a learner (ConvNet-3) trained on its samples does well on real data. Every
iteration draws a fresh learner (the reference's "epoch") and updates G by one of:

- ``gtn-gm`` (``gmpc_train``): ``outer_loop`` times, per class c, match the learner's gradients
  on G's ``ipc`` samples of c (from one balanced batch, see ``gm_matching_loss``) to its
  gradients on ``batch_real`` real images of c (the layer-wise distance of DC,
  ``gm.gradient_distance``, averaged over classes and parameter tensors), one Adam step
  on G, then ``inner_loop`` SGD steps of the learner on one batch of G's samples;
- ``gtn-ift`` (``ift_train``): ``inner_steps`` SGD steps of the learner on G's samples, then the
  implicit-function-theorem hypergradient of the real loss L_V with respect to G's parameters
  lambda (Lorraine et al. Eq. 5 with the inverse Hessian by a truncated Neumann series):

      dL_V/dlambda = - d^2 L_T / dlambda dw^T  [d^2 L_T / dw dw^T]^{-1}  dL_V/dw
      [H]^{-1} v  ~  alpha sum_{j=0..J} (I - alpha H)^j v

  (``neumann_inverse_hvp``; HVPs by double back-propagation with ``torch.autograd.grad``);
- ``gtn-unrolled`` (the original GTN, ``higher_train``): ``inner_steps`` differentiable SGD
  steps of the learner on G's samples, back-propagated through to G (memory grows with them).

L_V and the real gradients use the training images after the first ``validation_images``; those
first images are the validation split on which, every ``select_every`` iterations, a ConvNet
trained on G's stream is tested, and the best generator is kept (the reference's ``eval_step``
and ``best_teacher``; 0: the last). The synthetic set is ``ipc`` samples per class of the kept
generator (eval mode) from a seeded noise, with G's weights in its extras; ``stream_from_set``
rebuilds G from them for the shared evaluation on a stream (``eval.stream``).

Reference (7ebe4b9) -> this code -> same or different, why:

- ``MNISTTeacher(64, 64, 32, 16)``, fresh ``rand`` noise per call -> ``Generator``, ``sample`` ->
  same
- ``gmpc_train``: each class by ``prepare_data(.., class_nm)`` in train mode ->
  ``gm_matching_loss(class_batches=True)`` -> same; the ``-fixed`` recipe generates one balanced
  batch (BatchNorm over one class erases the label)
- ``batches4classes``: loader batches until 256 per class -> ``_RealBatches.per_class`` -> same
  distribution, seeded draws
- ``gm_loss(normalize=True)``, ``distance_wb``, clip 10 -> ``gradient_distance`` / tensors, clip 10
  -> same
- ``ift_train``: break when ``norm < norm0 * 1e-4`` -> ``inner_tolerance`` -> same
- ``ift_train``: L_T on a new noise draw -> L_T on the last learner step's noise -> different: one
  draw fewer, same distribution
- ``MetaOptimizer``/``Hypergrad``: Neumann series, 1/alpha scale -> ``ift_hypergradient`` -> same
- ``higher_train``: ``higher``'s differentiable SGD -> ``unrolled_validation_loss`` -> same
  (PyTorch's momentum rule)
- ``higher-gtn/exp3``: ``best_acc`` never updated, so the last generator ->
  ``GTNUnrolledConfig.select_every = 0`` -> same; the ``-selected`` recipe selects as GM and IFT
- ``gm-gtn/exp5``, ``ift-gtn/exp3``: best on validation every 10 epochs -> ``select_every = 10`` ->
  same
- ``eval_step``: ``TeacherIterDataset`` (a stream), lr 0.01, no aug -> ``validation_accuracy`` on
  ``generator_stream`` -> same
- ``look_for_results``/``generalization.py``: 3 tries x 5 learners on the stream -> ``eval.stream``:
  shared evaluation, ``stream_acc`` -> same; the fixed 100-image set is a second statistic (``acc``)
- ``look_for_results`` on exp5: no augmentation, ConvNet only -> recipe ``[eval]``: DC augmentation,
  5 architectures -> different: generalization.py's protocol, shared with random-mnist-ipc10
- labels ``x % 10`` (interleaved) -> class-major labels -> same (whole-batch steps do not use the
  order)
- unseeded draws, ``DataLoader`` shuffles -> seeds derived per iteration -> different: ``--resume``
  is exact
- ``dd-vs-gtn/gtn/bsz_500_k128`` (learned input noise) -> not implemented -> missing: no recipe

Checked side by side with the reference's own ``MNISTTeacher``, ``gm_loss``, ``MetaOptimizer``
and ``higher_train`` (``scripts/reference_check/gtn.py --variant gm|ift|unrolled``,
``leaderboards/fidelity.md``): the generator is bit-identical after 3 GTN+GM iterations of 10
generator updates and 100 learner steps each (32 real images per class), and after 5 GTN+IFT
and 5 unrolled generator updates (the reference's teacher parameters in this generator's order,
which only the clipping norm's float summation sees).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from bench.api import (
    GENERATOR_PREFIX,
    NETWORKS,
    AfterIteration,
    ConfigError,
    EvalProtocol,
    EvaluateDuring,
    Kind,
    Method,
    OuterLoop,
    RealSet,
    SeedStreams,
    ShapeError,
    Stream,
    SyntheticSet,
    SyntheticStream,
    build_network,
    require_in_range,
    require_learning_rates,
    require_positive,
    test_accuracy,
    train_on_synthetic,
)
from distillbench_methods.gm import gradient_distance

# The seed streams of a synthetic set's seed. The generator's initial weights share the
# runner's evaluation path (both code 1 since the first GTN runs; renumbering would change
# committed results): the runner only derives seeds from it, the generator is seeded with it.
STREAMS = SeedStreams(
    generator=Stream(1, overlaps="evaluation"),
    iteration=Stream(2, ("iteration",)),
    learner=Stream(3, ("iteration",)),
    sample=Stream(4),
    select=Stream(5, ("iteration",)),
)

# ALGO LOGIC: configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class GTNConfig:
    """What every GTN variant shares: the generator, the learner and the data. Defaults are the
    paper's code (``gm-gtn/exp5`` and ``ift-gtn/exp3`` launch scripts, ``MNISTTeacher``)."""

    iterations: int = 1000
    """fresh learners (the reference's epochs), each followed by generator update(s)"""
    noise_dim: int = 64
    """length of the uniform noise vector concatenated with the one-hot label"""
    fc_width: int = 64
    """first fully connected layer (the original GTN: 1024)"""
    feature_maps: int = 32
    """channels of the second fully connected layer's output maps (the original GTN: 128)"""
    conv_channels: int = 16
    """channels of the first convolution (the original GTN: 64)"""
    upsample: bool = False
    """False (the reference code): the maps are full-size (28x28) and both convolutions are
    3x3, stride 1; True (the GTN paper): the maps are a quarter of the size (7x7) and both
    convolutions are stride-2 transposed convolutions up to 28x28"""
    lr_generator: float = 0.01
    """Adam learning rate of the generator"""
    lr_learner: float = 0.02
    """SGD learning rate of the learner on generated samples"""
    momentum_learner: float = 0.5
    learner: str = "ConvNet"
    """the learner's architecture (ConvNet-3)"""
    grad_clip: float = 10.0
    """maximum norm of the generator's gradient"""
    batch_real: int = 256
    """real images per real batch (per class in gradient matching)"""
    validation_images: int = 10000
    """the first this many training images are held out as the validation split"""
    select_every: int = 10
    """every this many iterations, test a ConvNet trained on a sample of the generator on the
    validation split and keep the best generator (reference ``eval_it``); 0: keep the last"""
    select_epochs: int = 100
    """training epochs of that ConvNet (reference ``eval_c.epoch``; no augmentation, lr 0.01)"""

    def __post_init__(self) -> None:
        if self.learner not in NETWORKS:
            raise ConfigError(
                f"method.learner: unknown network {self.learner!r}; available: "
                f"{', '.join(NETWORKS)}"
            )
        require_positive(
            self,
            ("iterations", "noise_dim", "fc_width", "feature_maps", "conv_channels"),
            "method",
        )
        require_positive(self, ("batch_real", "validation_images", "select_epochs"), "method")
        require_learning_rates(self, "method")  # with GTN+IFT's neumann_lr
        require_in_range(self, ("grad_clip",), "method")


@dataclass(frozen=True)
class GTNGMConfig(GTNConfig):
    """GTN+GM (reference ``gmpc_train`` with ``ous=10, ls=10``, 130 epochs at batch 100)."""

    iterations: int = 130
    outer_loop: int = 10
    """generator updates per learner"""
    inner_loop: int = 10
    """learner SGD steps on one generated batch between generator updates"""
    select_epochs: int = 10
    """the gm-gtn launch script's ``eval_c.epoch``"""
    class_batches: bool = True
    """True (the reference's ``prepare_data(teacher, None, class_nm)``): each class's samples
    of the matching loss are generated as their own train-mode batch, so BatchNorm normalises
    over one class; False (the ``-fixed`` variant): one balanced batch of all classes, split
    by class (see ``gm_matching_loss``)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, ("outer_loop", "inner_loop"), "method")


@dataclass(frozen=True)
class GTNIFTConfig(GTNConfig):
    """GTN+IFT (reference ``ift_train(max_steps=10)``, ``MetaOptimizer(hpo_lr=1e-3,
    truncate_iter=10, max_grad_norm=4)``, 1080 epochs at batch 100)."""

    iterations: int = 1080
    inner_steps: int = 10
    """learner SGD steps before the hypergradient (at most; see ``inner_tolerance``)"""
    inner_tolerance: float = 1e-4
    """stop the learner early once its squared gradient norm is below this fraction of the
    first step's (reference ``epsilon``)"""
    neumann_terms: int = 10
    """terms J of the Neumann series (reference ``truncate_iter``)"""
    neumann_lr: float = 1e-3
    """alpha of the Neumann series (reference ``hpo_lr``)"""
    grad_clip: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, ("inner_steps", "neumann_terms"), "method")
        require_in_range(self, ("inner_tolerance",), "method", low_included=True)


@dataclass(frozen=True)
class GTNUnrolledConfig(GTNConfig):
    """The original GTN: back-propagation through ``inner_steps`` learner steps (reference
    ``higher_train``, with the learner's SGD made differentiable as ``higher`` does)."""

    inner_steps: int = 10
    select_every: int = 0
    """0: keep the last generator, as the reference (the ``higher-gtn`` launch scripts test the
    generator every 20 epochs but never update ``best_acc``, so the dumped teacher is the last
    one tested, that of the last epoch)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, ("inner_steps",), "method")


# ALGO LOGIC: the generator (reference gtn/models/mnist_teacher.py) --------------------------


class Generator(nn.Module):
    """Conditional generator of the reference's ``MNISTTeacher``: concat(z, one-hot y) ->
    FC(``fc_width``) -> LeakyReLU(0.1) -> BN -> FC(``feature_maps`` maps) -> LeakyReLU -> BN ->
    conv(``conv_channels``) -> BN -> LeakyReLU -> conv(C) -> BN -> LeakyReLU -> tanh.

    The fully connected weights are ``kaiming_normal_(a=0.1)`` as the reference; the
    convolutions keep PyTorch's default initialisation.
    """

    def __init__(self, config: GTNConfig, channels: int, num_classes: int, size: int) -> None:
        super().__init__()
        if config.upsample and size % 4:
            raise ConfigError(f"method.upsample needs an image size divisible by 4, got {size}")
        self.num_classes = num_classes
        self.noise_dim = config.noise_dim
        self.map_size = size // 4 if config.upsample else size
        self.feature_maps = config.feature_maps
        self.fc1 = nn.Linear(config.noise_dim + num_classes, config.fc_width)
        self.bn1 = nn.BatchNorm1d(config.fc_width)
        self.fc2 = nn.Linear(config.fc_width, config.feature_maps * self.map_size**2)
        self.bn2 = nn.BatchNorm2d(config.feature_maps)
        if config.upsample:
            self.conv1 = nn.ConvTranspose2d(config.feature_maps, config.conv_channels, 4, 2, 1)
            self.conv2 = nn.ConvTranspose2d(config.conv_channels, channels, 4, 2, 1)
        else:
            self.conv1 = nn.Conv2d(config.feature_maps, config.conv_channels, 3, padding=1)
            self.conv2 = nn.Conv2d(config.conv_channels, channels, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(config.conv_channels)
        self.bn4 = nn.BatchNorm2d(channels)
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(fc.weight, a=0.1)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images ``[N, C, H, W]`` in (-1, 1) from noise ``[N, noise_dim]`` and int64 labels
        ``[N]``."""
        x = torch.cat([noise, F.one_hot(labels, self.num_classes).to(noise.dtype)], dim=1)
        x = self.bn1(F.leaky_relu(self.fc1(x), 0.1))
        x = F.leaky_relu(self.fc2(x), 0.1)
        x = self.bn2(x.view(-1, self.feature_maps, self.map_size, self.map_size))
        x = F.leaky_relu(self.bn3(self.conv1(x)), 0.1)
        x = F.leaky_relu(self.bn4(self.conv2(x)), 0.1)
        return torch.tanh(x)


def build_generator(config: GTNConfig, real: RealSet, seed: int) -> Generator:
    """The generator for ``real``'s image shape, initialised from ``seed``."""
    card = real.card
    if card.image_size[0] != card.image_size[1]:
        raise ConfigError(f"GTN generates square images; {card.display_name} is not square")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(config, card.channels, card.num_classes, card.image_size[0])


def sample(
    generator: Generator,
    labels: torch.Tensor,
    rng: torch.Generator,
    grad: bool = True,
) -> torch.Tensor:
    """G's images ``[N, C, H, W]`` for int64 ``labels [N]`` from uniform noise drawn with
    ``rng`` (CPU), in the generator's current mode (train: batch statistics)."""
    noise = torch.rand(len(labels), generator.noise_dim, generator=rng).to(labels.device)
    with torch.set_grad_enabled(grad):
        return generator(noise, labels)


def balanced_labels(num_classes: int, per_class: int, device: torch.device) -> torch.Tensor:
    """Class-major labels ``[num_classes * per_class]``."""
    return torch.arange(num_classes, device=device).repeat_interleave(per_class)


# ALGO LOGIC: the learner ----------------------------------------------------------------------


def fresh_learner(config: GTNConfig, real: RealSet, seed: int, device: torch.device):
    """A freshly initialised learner and its SGD optimiser (lr 0.02, momentum 0.5)."""
    card = real.card
    net = build_network(config.learner, card.channels, card.num_classes, card.image_size, seed)
    net = net.to(device).train()
    optimizer = torch.optim.SGD(
        net.parameters(), lr=config.lr_learner, momentum=config.momentum_learner
    )
    return net, optimizer


def learner_step(net: nn.Module, optimizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    """One SGD step of the learner on images ``[N, C, H, W]`` with int64 labels ``[N]``;
    returns the squared norm of the learner's gradient (sum over its parameters)."""
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(net(images), labels).backward()
    norm = sum(float(p.grad.pow(2).sum()) for p in net.parameters() if p.grad is not None)
    optimizer.step()
    return norm


# ALGO LOGIC: the three generator updates ------------------------------------------------------


def gm_matching_loss(
    generator: Generator,
    learner: nn.Module,
    real_by_class: Sequence[torch.Tensor],
    per_class: int,
    rng: torch.Generator,
    class_batches: bool = True,
) -> torch.Tensor:
    """Per-class gradient matching loss of the generator (reference ``gmpc_train``/``gm_loss``
    with ``normalize=True``): the mean over classes of ``gradient_distance`` (DC Eq. 11)
    between the learner's gradients on ``per_class`` generated and on the real images of
    that class, divided by the number of parameter tensors.

    ``class_batches`` (the reference): each class's images are generated as their own batch in
    the generator's mode (train: BatchNorm over that class alone). The first BatchNorm then
    removes the one-hot label's shift wherever the first layer is linear (exactly, when every
    pre-activation is positive), and the eval-mode samples, normalised by running statistics
    of single-class batches, are not what was trained: the smoke budget's fixed set tested at
    3.7%. ``class_batches=False`` (the ``-fixed`` variant): one balanced batch of all classes,
    split by class.

    Args:
        real_by_class: one real batch ``[B, C, H, W]`` per class, on the learner's device.
    Returns:
        scalar, differentiable in the generator's parameters.
    """
    params = list(learner.parameters())
    device = real_by_class[0].device
    if not class_batches:
        balanced = balanced_labels(len(real_by_class), per_class, device)
        synthetic = sample(generator, balanced, rng)
    total = 0.0
    for c, real in enumerate(real_by_class):
        y_real = torch.full((len(real),), c, device=device)
        g_real = torch.autograd.grad(F.cross_entropy(learner(real), y_real), params)
        y_syn = torch.full((per_class,), c, device=device)
        if class_batches:
            x_syn = sample(generator, y_syn, rng)
        else:
            x_syn = synthetic[c * per_class : (c + 1) * per_class]
        g_syn = torch.autograd.grad(
            F.cross_entropy(learner(x_syn), y_syn), params, create_graph=True
        )
        total = total + gradient_distance(g_syn, [g.detach() for g in g_real]) / len(params)
    return total / len(real_by_class)


def neumann_inverse_hvp(
    v: Sequence[torch.Tensor],
    hvp: Callable[[Sequence[torch.Tensor]], Sequence[torch.Tensor]],
    alpha: float,
    terms: int,
) -> list[torch.Tensor]:
    """``p = sum_{j=0..terms} (I - alpha H)^j v``, so that ``alpha * p`` approximates
    ``H^{-1} v`` (Lorraine et al. Alg. 3; converges when ``0 < alpha < 2 / lambda_max(H)`` for
    positive-definite H). Returned without the factor alpha, as the reference
    (AuxiLearn ``Hypergrad._approx_inverse_hvp``), whose gradient clipping sees that scale.

    Args:
        v: tensors shaped like the learner's parameters.
        hvp: ``u -> H u`` for tensors of the same shapes.
    """
    p = list(v)
    for _ in range(terms):
        hv = hvp(v)
        v = [vi - alpha * hi for vi, hi in zip(v, hv, strict=True)]
        p = [pi + vi for pi, vi in zip(p, v, strict=True)]
    return p


def ift_hypergradient(
    train_loss: torch.Tensor,
    val_loss: torch.Tensor,
    params: Sequence[torch.Tensor],
    hyperparams: Sequence[torch.Tensor],
    alpha: float,
    terms: int,
) -> list[torch.Tensor]:
    """Implicit-function-theorem hypergradient ``-(d^2 L_T/dlambda dw^T) H^{-1} dL_V/dw``
    (Lorraine et al. Eq. 5 and Alg. 2; L_V has no direct dependence on lambda here), with
    ``H^{-1}`` by ``neumann_inverse_hvp``; like it, scaled by ``1 / alpha``.

    Args:
        train_loss: L_T(w, lambda), differentiable in ``params`` w and ``hyperparams`` lambda.
        val_loss: L_V(w), differentiable in ``params``.
    Returns:
        one tensor per hyperparameter, of its shape.
    """
    dval = torch.autograd.grad(val_loss, params)
    dtrain = torch.autograd.grad(train_loss, params, create_graph=True)

    def hvp(u):
        return torch.autograd.grad(dtrain, params, grad_outputs=u, retain_graph=True)

    p = neumann_inverse_hvp([d.detach() for d in dval], hvp, alpha, terms)
    mixed = torch.autograd.grad(dtrain, hyperparams, grad_outputs=p)
    return [-g for g in mixed]


def unrolled_validation_loss(
    generator: Generator,
    learner: nn.Module,
    labels: torch.Tensor,
    steps: int,
    lr: float,
    momentum: float,
    real: tuple[torch.Tensor, torch.Tensor],
    rng: torch.Generator,
) -> torch.Tensor:
    """The original GTN's meta-loss: the learner's loss on the ``real`` batch ``(x, y)`` after
    ``steps`` differentiable SGD-with-momentum steps (PyTorch's rule, ``buf = m buf + g``) on
    fresh generated batches with ``labels``; its graph holds every step, differentiable in the
    generator's parameters."""
    params = {name: p.detach().requires_grad_(True) for name, p in learner.named_parameters()}
    buffers = {name: torch.zeros_like(p) for name, p in params.items()}
    for _ in range(steps):
        images = sample(generator, labels, rng)
        loss = F.cross_entropy(functional_call(learner, params, (images,)), labels)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        for (name, p), g in zip(list(params.items()), grads, strict=True):
            buffers[name] = momentum * buffers[name] + g
            params[name] = p - lr * buffers[name]
    x, y = real
    return F.cross_entropy(functional_call(learner, params, (x,)), y)


def generator_step(generator: Generator, optimizer, clip: float) -> float:
    """Clip the generator's gradient to norm ``clip`` and take the optimiser step; returns the
    norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(generator.parameters(), max_norm=clip)
    optimizer.step()
    return float(norm)


# ALGO LOGIC: training --------------------------------------------------------------------------


class _RealBatches:
    """Seeded random batches of the training images after the validation split."""

    def __init__(self, real: RealSet, config: GTNConfig, device: torch.device) -> None:
        held_out = config.validation_images
        if held_out >= len(real.labels):
            raise ConfigError(
                f"method.validation_images={held_out} leaves no training images of "
                f"{len(real.labels)}; lower it"
            )
        self.images = real.images[held_out:]
        self.labels = real.labels[held_out:]
        self.by_class = [
            torch.nonzero(self.labels == c).squeeze(1) for c in range(real.card.num_classes)
        ]
        self.batch = config.batch_real
        self.device = device

    def per_class(self, rng: torch.Generator) -> list[torch.Tensor]:
        """One batch ``[batch_real, C, H, W]`` per class."""
        out = []
        for idx in self.by_class:
            pick = idx[torch.randperm(len(idx), generator=rng)[: self.batch]]
            out.append(self.images[pick].to(self.device))
        return out

    def mixed(self, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of ``batch_real`` images of all classes and their labels."""
        pick = torch.randperm(len(self.labels), generator=rng)[: self.batch]
        return self.images[pick].to(self.device), self.labels[pick].to(self.device)


def _gm_iteration(gen, optimizer, learner, learner_opt, real, labels, ipc, config, rng):
    """GTN+GM: ``outer_loop`` matching updates, each followed by ``inner_loop`` learner steps
    on one generated batch (reference ``gmpc_train``)."""
    losses = []
    for _ in range(config.outer_loop):
        gen.train()
        loss = gm_matching_loss(gen, learner, real.per_class(rng), ipc, rng, config.class_batches)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        generator_step(gen, optimizer, config.grad_clip)
        losses.append(loss.item())
        gen.eval()
        images = sample(gen, labels, rng, grad=False)
        for _ in range(config.inner_loop):
            learner_step(learner, learner_opt, images, labels)
    return {"distill/loss": sum(losses) / len(losses)}


def _ift_iteration(gen, optimizer, learner, learner_opt, real, labels, ipc, config, rng):
    """GTN+IFT: learner steps on generated batches, then one hypergradient update (reference
    ``ift_train``)."""
    gen.eval()
    first = None
    for _ in range(config.inner_steps):
        noise_state = rng.get_state()
        norm = learner_step(learner, learner_opt, sample(gen, labels, rng, grad=False), labels)
        first = first or norm
        if norm < first * config.inner_tolerance:
            break
    gen.train()
    rng.set_state(noise_state)  # the last learner step's noise
    params = list(learner.parameters())
    train_loss = F.cross_entropy(learner(sample(gen, labels, rng)), labels)
    x, y = real.mixed(rng)
    val_loss = F.cross_entropy(learner(x), y)
    grads = ift_hypergradient(
        train_loss,
        val_loss,
        params,
        list(gen.parameters()),
        config.neumann_lr,
        config.neumann_terms,
    )
    optimizer.zero_grad(set_to_none=True)
    for p, g in zip(gen.parameters(), grads, strict=True):
        p.grad = g
    generator_step(gen, optimizer, config.grad_clip)
    return {"distill/loss": val_loss.item(), "distill/train_loss": train_loss.item()}


def _unrolled_iteration(gen, optimizer, learner, learner_opt, real, labels, ipc, config, rng):
    """Original GTN: one update through ``inner_steps`` unrolled learner steps (reference
    ``higher_train``)."""
    gen.train()
    loss = unrolled_validation_loss(
        gen,
        learner,
        labels,
        config.inner_steps,
        config.lr_learner,
        config.momentum_learner,
        real.mixed(rng),
        rng,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    generator_step(gen, optimizer, config.grad_clip)
    return {"distill/loss": loss.item()}


ITERATIONS = {
    GTNGMConfig: _gm_iteration,
    GTNIFTConfig: _ift_iteration,
    GTNUnrolledConfig: _unrolled_iteration,
}
"""one iteration (a fresh learner and its generator update(s)) per variant"""

CONFIGS = {"gtn-gm": GTNGMConfig, "gtn-ift": GTNIFTConfig, "gtn-unrolled": GTNUnrolledConfig}
"""method name -> config class"""


class GTNTraining:
    """The generator of one GTN run, its Adam optimiser and the real batches; ``iteration``
    runs one iteration of the variant ``config``'s class names (``ITERATIONS``).

    Raises:
        ConfigError: an unknown config class or too few training images.
    """

    def __init__(
        self, config: GTNConfig, real: RealSet, ipc: int, seed: int, device: torch.device
    ) -> None:
        if type(config) not in ITERATIONS:
            raise ConfigError(f"no GTN variant for config {type(config).__name__}")
        self.config, self.real, self.ipc, self.device = config, real, ipc, device
        self.generator = build_generator(config, real, seed).to(device)
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr_generator)
        self.real_batches = _RealBatches(real, config, device)
        self.labels = balanced_labels(real.card.num_classes, ipc, device)

    def iteration(self, seed: int, learner_seed: int) -> dict[str, float]:
        """A fresh learner from ``learner_seed`` and the generator update(s); every other draw
        from ``seed``. Returns the iteration's metrics (``distill/loss``, ...)."""
        rng = torch.Generator().manual_seed(seed)
        learner, learner_opt = fresh_learner(self.config, self.real, learner_seed, self.device)
        return ITERATIONS[type(self.config)](
            self.generator,
            self.optimizer,
            learner,
            learner_opt,
            self.real_batches,
            self.labels,
            self.ipc,
            self.config,
            rng,
        )


def sample_synthetic_set(
    generator: Generator, real: RealSet, ipc: int, seed: int, method: str
) -> SyntheticSet:
    """``ipc`` samples per class of ``generator`` in eval mode from noise seeded by ``seed``;
    the set carries the generator's weights (extras ``generator.*``)."""
    generator = generator.eval()
    device = next(generator.parameters()).device
    labels = balanced_labels(real.card.num_classes, ipc, device)
    rng = torch.Generator().manual_seed(seed)
    images = sample(generator, labels, rng, grad=False)
    return SyntheticSet(
        images=images.cpu(),
        labels=labels.cpu(),
        method=method,
        dataset=real.card.name,
        ipc=ipc,
        seed=seed,
        extras={
            GENERATOR_PREFIX + k: v.detach().cpu().clone()
            for k, v in generator.state_dict().items()
        },
    )


def generator_stream(generator: Generator, labels: torch.Tensor) -> SyntheticStream:
    """The reference's ``TeacherIterDataset``: every call, a fresh batch of ``generator``'s
    samples for int64 ``labels [N]`` in eval mode (running BatchNorm statistics), noise drawn
    with the caller's ``rng``; returns ``(images [N, C, H, W], labels [N])``."""
    generator = generator.eval()

    def draw(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return sample(generator, labels, rng, grad=False), labels

    return draw


def stream_from_set(synset: SyntheticSet, config: GTNConfig, device) -> SyntheticStream:
    """``Method.stream``: the generator stored in ``synset``'s extras (``generator.*``), rebuilt
    for ``config``'s architecture on ``device``, drawing batches of ``synset``'s size and
    class-major labels (the reference's batch of ``batch_size`` = classes x ipc).

    Raises:
        ShapeError: the set carries no generator.
    """
    weights = synset.generator_weights()
    if not weights:
        raise ShapeError(
            f"eval.stream: this {synset.method} set carries no generator weights; "
            "set eval.stream=false"
        )
    channels, size = synset.images.shape[1], synset.images.shape[-1]
    num_classes = int(synset.labels.max()) + 1
    with torch.random.fork_rng(devices=[]):  # the weights are loaded, the init is discarded
        generator = Generator(config, channels, num_classes, size)
    generator.load_state_dict(weights)
    return generator_stream(generator.to(device), synset.labels.to(device))


def validation_accuracy(
    generator: Generator,
    labels: torch.Tensor,
    validation: RealSet,
    config: GTNConfig,
    seed: int,
    device,
) -> float:
    """Accuracy (%) on the validation split of a learner network trained ``select_epochs + 1``
    epochs on a fresh batch of ``generator`` with ``labels`` each epoch (lr 0.01, x0.1 after
    half, no augmentation: the reference's ``eval_step`` -> ``evaluate_net`` on a
    ``TeacherIterDataset``). Leaves the generator in eval mode."""
    protocol = EvalProtocol(num_exp=1, num_eval=1, epochs=config.select_epochs)
    stream = generator_stream(generator, labels)
    empty = SyntheticSet(
        images=torch.empty(0),
        labels=torch.empty(0, dtype=torch.int64),
        method="",
        dataset=validation.card.name,
        ipc=0,
        seed=seed,
    )
    net = train_on_synthetic(
        config.learner, empty, validation.card, protocol, seed, device, stream=stream
    )
    return test_accuracy(net, validation, None, device)


def distill(
    real: RealSet,
    ipc: int,
    config: GTNConfig,
    seed: int,
    device: torch.device,
    *,
    resume: dict[str, Any] | None = None,
    after_iteration: AfterIteration | None = None,
    evaluate: EvaluateDuring | None = None,
) -> SyntheticSet:
    """Train a generator by the variant ``config``'s class names and sample a synthetic set.

    Args:
        real: the real training split (images ``[N, C, H, W]``, labels ``[N]``); its first
            ``config.validation_images`` are the validation split.
        ipc: images per class of the synthetic set, and of every generated training batch.
        config: ``GTNGMConfig``, ``GTNIFTConfig`` or ``GTNUnrolledConfig``.
        seed: seed of this synthetic set; every draw is derived from it.
        device: where to compute.
        resume: a state returned by ``after_iteration``'s ``state()``; continues from there.
        after_iteration: called after every iteration as ``after_iteration(it, metrics,
            state)`` with ``distill/loss`` (GM: matching loss; IFT, unrolled: the learner's loss
            on a real batch) and, on selection iterations, ``distill/validation_acc``.
        evaluate: unused (the generator is selected on its own validation split).

    Returns:
        SyntheticSet with images ``[K * ipc, C, H, W]`` (class-major labels) and the kept
        generator's weights.

    Raises:
        ConfigError: an unknown config class or too few training images.
        DivergedError: a loss became NaN/inf; ``error.last_good`` holds a sample of the kept
            generator.
    """
    training = GTNTraining(config, real, ipc, STREAMS.seed(seed, "generator"), device)
    gen, optimizer = training.generator, training.optimizer
    method = next(name for name, cls in CONFIGS.items() if cls is type(config))
    validation = replace(
        real,
        images=real.images[: config.validation_images],
        labels=real.labels[: config.validation_images],
    )
    best = {"accuracy": -1.0, "weights": None}
    if resume is not None:
        gen.load_state_dict(resume["generator"])
        optimizer.load_state_dict(resume["optimizer"])
        best = {"accuracy": resume["best_accuracy"], "weights": resume["best_generator"] or None}

    def kept_set() -> SyntheticSet:
        kept = copy.deepcopy(gen)
        if best["weights"] is not None:  # a selection has happened
            kept.load_state_dict(best["weights"])
        return sample_synthetic_set(kept, real, ipc, STREAMS.seed(seed, "sample"), method)

    loop = OuterLoop(
        config.iterations,
        resume,
        after_iteration,
        synthetic_set=kept_set,
        state=lambda: {
            "generator": copy.deepcopy(gen.state_dict()),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "best_accuracy": best["accuracy"],
            "best_generator": best["weights"] or {},
        },
    )
    for it in loop:
        metrics = training.iteration(
            STREAMS.seed(seed, "iteration", it), STREAMS.seed(seed, "learner", it)
        )
        loop.check_finite(
            f"GTN loss at iteration {it}",
            metrics["distill/loss"],
            torch.tensor(list(metrics.values())),
            hint="lower method.lr_generator (the kept generator's sample is what is kept)",
        )
        if config.select_every and (it + 1) % config.select_every == 0:
            accuracy = validation_accuracy(
                gen, training.labels, validation, config, STREAMS.seed(seed, "select", it), device
            )
            metrics["distill/validation_acc"] = accuracy
            if accuracy > best["accuracy"]:
                best = {"accuracy": accuracy, "weights": copy.deepcopy(gen.state_dict())}
        loop.report(it, metrics)
    return loop.synthetic_set()


def _variant(name: str, config_class: type, description: str) -> Method:
    """The three GTN methods share the entry point, the stream and the speed benchmark."""
    return Method(
        name=name,
        config_class=config_class,
        kind=Kind.DISTILLED,
        distill=distill,
        stream=stream_from_set,
        speed_benchmark="distillbench_methods.gtn_speed:main",
        description=description,
    )


GTN_GM = _variant(
    "gtn-gm", GTNGMConfig, "generative teaching network trained by gradient matching (GTN+GM)"
)
GTN_IFT = _variant(
    "gtn-ift",
    GTNIFTConfig,
    "generative teaching network trained by implicit differentiation (GTN+IFT)",
)
GTN_UNROLLED = _variant(
    "gtn-unrolled",
    GTNUnrolledConfig,
    "generative teaching network trained by unrolled back-propagation",
)
