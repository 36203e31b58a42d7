"""Gradient matching on sparse point clouds: distil point-cloud MNIST by moving point coordinates.

ElGhandour, "Dataset Distillation for 3D Point Clouds" (report, ``../shared/seeds/001_*``;
README ``000_*``), reference code kghandour/dd3d@d3dc89f (``mnist_distill.py``), summarised in
``notes/issue6-reference-protocol.md``.

MNIST is thresholded to binary and every occupied pixel becomes a point (0, row, column)
(§3.1.1). The synthetic set is one cloud of ``points`` points per class, initialised uniformly
in the 1 x 28 x 28 grid (§3.1.2); the points' coordinates are also their features (§3.1.3), so
the matching loss has a gradient with respect to them and SGD moves the points. Each iteration:

    clamp the points into [0, 27] and reset their depth to 0             (boundary check, §3.1.2)
    for every class c: D( grad_theta L(S_c), grad_theta L(T_c) )  on 256 real clouds of class c
    one SGD step on the points for the sum over classes                  (§3.2.1; reference)

with D the sum of squared differences (the report's choice, Table 1) or DC's layer-wise cosine
distance (Table 2). The distillation network is one Kaiming-initialised network per synthetic
set, never re-initialised and never trained: the reference does so, and the report's
conclusion speaks of "the randomly initialized distillation network". Two networks behind
``network``: MinkowskiEngine sparse layers, or dense PyTorch layers on the batch made dense
(``distillbench_methods.pointcloud_networks``). The result is projected back to binary 28 x 28 images
(a pixel is 1 where a point falls), which the shared evaluation trains on and tests on the
binarised MNIST test split (``prepare_real``).

What moves the points: MinkowskiEngine's convolution backward is a C++ kernel that autograd
cannot differentiate, so the sparse network's convolution-kernel gradients carry no graph
back to the points. The gradients that do are those of the linear head and, with
``layout="reference"``, of the instance norms' affine weights and biases (computed with
ordinary torch ops on normalised features that depend on the points); ``tests/test_pc_gm.py``
pins both layouts. In the dense network every gradient depends on the points.

Reference: kghandour/dd3d@d3dc89f (``mnist_distill.py``, ``models/MEConv.py``,
``distillation_loss.py``, ``utils/Mnist2D.py``); the default configuration and the recipes
named after the report's cells run its protocol, the ``-fixed`` recipes the corrections
(``layout="fixed"``, ``anchor="origin"``, ``init_span=27``, ``layerwise_biases=false``,
``pixels="normalised"``, no test augmentation, 5 synthetic sets x 5 ConvNets).

| reference line | this code | same / different, why |
|---|---|---|
| ``Mnist2D.py`` ``ThresholdTransform(75)``, ``argwhere(image==1)[:250]`` | ``binary_pixels``, ``first_points`` | same |
| ``mnist_distill.py`` L299 ``28 * torch.rand``; L311-317 clamp to [0, 27], depth 0 | ``initial_points(span=init_span)``, ``clamp_to_grid`` each iteration | same (``init_span=28``); ``-fixed``: 27 |
| L303 ``SGD([image_syn], lr=0.1, momentum=0.5)`` | ``lr_points``, ``momentum_points`` | same |
| L200-208 256 real clouds per class, resampled every iteration | ``batch_real``, per-iteration ``randperm`` | same |
| L268-273 one network, never re-initialised or trained | ``build_network`` once per set | same |
| ``MEConv.py`` L224-227 ME conv (no bias) -> ``MinkowskiInstanceNorm(128)`` -> ReLU -> max pool | ``SparsePointCloudNet(layout="reference")`` | same; ``-fixed``: no instance norm |
| L215, L250-256 ``dense([B,128,1,28,28])`` + ``Linear(100352, 10)`` (default init) | head over the full grid | same; ``-fixed``: head over the S x S cells (4-14x larger initial weights) |
| L191-194 ``Conv3d((1,3,3), padding=1)``, ReLU, ``MaxPool3d(2, 2)``, no norm | ``DensePointCloudNet(layout="reference")`` | same: depth padded to 3, pooled over a bias-only slice and the real one; ``-fixed``: padding (0,1,1), pool (1,2,2) |
| L201-203, L251-254 ``min_coordinate`` = the batch's minimum | ``anchor="batch_min"`` | same; ``-fixed``: one origin for real and synthetic clouds |
| ``distillation_loss.py`` ``modmse`` / ``ours`` (biases as one row, L47 ``return 0`` commented out) | ``distance``, ``layerwise_biases=True`` | same; ``-fixed``: biases skipped as DC |
| L260 seed from the clock | every draw from ``derive_seed(seed, ...)`` | different: reproducible runs |
| L276/L320 evaluated at iteration 2499, before its update (2499 steps) | evaluated after all ``iterations`` steps | different by one step of 2500, not worth a special case |
| L163-168 ``populate_img``: binary image, fed raw to ``ConvNet`` | ``projected_images``, ``pixels="binary"`` | same; ``-fixed``: normalised with MNIST's mean/std |
| L138 ``augment`` on every batch, test batches (256) included | ``EvalProtocol.augment_test`` | the reference's transforms bit for bit given the same draws, drawn from the run's seed (``bench/data/augment.py``, ``leaderboards/fidelity.md``); ``-fixed``: training only |
| L325 5 ConvNets on the one final set, averaged offline (report) | paper budget ``num_exp=1, num_eval=5`` | same; ``-fixed``: 5 sets x 5 ConvNets |
| L169-198 SGD 0.01, momentum 0.9, wd 5e-4, 1001 epochs, decay at 501, batch 256 | shared evaluation, ``epochs=1000`` | same |
| ``MEPytorch``: net_depth hard-coded (2/3/4 by editing) | ``layers`` | same networks, chosen by config |

Checked against the reference itself (``scripts/reference_check/pc_gm.py``,
``leaderboards/fidelity.md``): its own networks, data path and ``match_loss`` on real
MinkowskiEngine, from the same clouds, weights and real digits, agree bit for bit (sparse) and
to 7e-7 after 10 iterations (dense: the suite back-propagates class by class, another float
summation order). Floored voxels make the dense trajectories chaotic: at the smoke budget they
part by whole pixels within 20 iterations, and over 10 sets per side the final accuracies differ
by -0.30 pp (90 % interval [-2.40, +1.80]; inconclusive at 1 pp, equivalent at the recipe's 5).
"""  # noqa: E501 (a table, one row per line)

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from bench.api import (
    AfterIteration,
    ConfigError,
    EnvironmentFault,
    EvaluateDuring,
    Kind,
    Method,
    OuterLoop,
    RealSet,
    SeedStreams,
    Stream,
    SyntheticSet,
    denormalise,
    normalise,
    require_learning_rates,
    require_positive,
)
from distillbench_methods.gm import gradient_distance
from distillbench_methods.pointcloud_networks import (
    DensePointCloudNet,
    SparsePointCloudNet,
    import_minkowski,
)
from distillbench_methods.pointclouds import (
    GRID,
    batch_points,
    clamp_to_grid,
    first_points,
    masks_to_batch,
    points_to_image,
    save_point_cloud_render,
)

# ALGO LOGIC: configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class PCGMConfig:
    """Point-cloud gradient matching; defaults are the report's best cell (MinkowskiEngine,
    2 layers, sum of squares) with the reference code's values where the report is silent."""

    iterations: int = 2500
    """distillation iterations (reference ``total_iterations``)"""
    network: Literal["sparse", "dense"] = "sparse"
    """``sparse``: MinkowskiEngine layers; ``dense``: PyTorch layers on the dense grid"""
    layers: int = 2
    """convolution blocks of the distillation network (report Table 1: 2, 3, 4)"""
    pooling: Literal["max", "avg"] = "max"
    """pooling of every block; ``avg`` is the report's ablation (§4.4)"""
    width: int = 128
    """channels of every block (reference)"""
    distance: Literal["sum_of_squares", "layerwise"] = "sum_of_squares"
    """gradient distance (report Table 2): the summed squared difference of all gradients, or
    DC's layer-wise cosine distance (paper Eq. 11 of Zhao et al.)"""
    threshold: int = 75
    """a pixel (0..255) is a point when its value is above this (reference ``thr_255``)"""
    max_points: int = 250
    """real clouds keep their first ``max_points`` points in row-major order (reference)"""
    points: int = 250
    """points of every synthetic cloud (reference ``num_points``)"""
    lr_points: float = 0.1
    """SGD learning rate of the point coordinates (reference ``dist_lr``)"""
    momentum_points: float = 0.5
    """SGD momentum of the point coordinates (reference, hard-coded)"""
    batch_real: int = 256
    """real clouds per class per iteration (reference ``batch_size``)"""
    layout: Literal["reference", "fixed"] = "reference"
    """``reference``: the reference's layers (sparse: instance norm after every convolution and
    a head over the full 28 x 28 grid; dense: depth padded to 3 and 2x2x2 pooling);
    ``fixed``: neither (``distillbench_methods.pointcloud_networks``)"""
    anchor: Literal["batch_min", "origin"] = "batch_min"
    """``batch_min``: every batch is shifted by its own minimum coordinate before the dense grid
    (reference); ``origin``: one origin for real and synthetic clouds"""
    init_span: float = 28.0
    """synthetic height/width start uniform in ``[0, init_span)``; the first boundary check
    clamps them to 27 (reference: ``28 * rand``, so about 1 in 28 starts on row/column 27)"""
    layerwise_biases: bool = True
    """the layer-wise distance counts each bias gradient as one row (reference
    ``distance_wb``); ``False`` skips biases as DC does"""
    pixels: Literal["binary", "normalised"] = "binary"
    """images the evaluation trains and tests on: ``binary`` {0, 1} as the reference feeds its
    ConvNet, or ``normalised`` with the card's mean/std"""

    def __post_init__(self) -> None:
        require_positive(self, ("iterations", "max_points", "points", "batch_real"), "method")
        require_learning_rates(self, "method")
        if not 0 <= self.threshold < 255:
            raise ConfigError(f"method.threshold must be in 0..254, got {self.threshold}")
        if not 1 <= self.layers <= 4:  # every block halves the 28 x 28 grid
            raise ConfigError(f"method.layers must be 1..4 on the 28 x 28 grid, got {self.layers}")
        if not 1.0 <= self.init_span <= 28.0:
            raise ConfigError(f"method.init_span must be in [1, 28], got {self.init_span}")


def build_network(config: PCGMConfig, seed: int, num_classes: int = 10) -> torch.nn.Module:
    """The distillation network ``config`` names, Kaiming-initialised from ``seed`` (the global
    RNG is forked, not changed).

    Raises:
        ImportError: ``network="sparse"`` without MinkowskiEngine (says how to install it).
    """
    builder = SparsePointCloudNet if config.network == "sparse" else DensePointCloudNet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(
            config.layers,
            config.pooling,
            config.width,
            num_classes=num_classes,
            layout=config.layout,
            anchor=config.anchor,
        )


def preflight(config: PCGMConfig) -> None:
    """The sparse network needs MinkowskiEngine (an optional dependency built from source):
    check it is importable before the runner creates a run.

    Raises:
        EnvironmentFault: ``network="sparse"`` and MinkowskiEngine cannot be imported.
    """
    if config.network != "sparse":
        return
    try:
        import_minkowski()
    except ImportError as exc:
        raise EnvironmentFault(
            f"method.network=sparse: {exc} (the pc-gm-mnist-pytorch-* recipes)"
        ) from None


# ALGO LOGIC: real data ----------------------------------------------------------------------


def binary_pixels(real: RealSet, threshold: int) -> torch.Tensor:
    """Occupancy ``[N, H, W]`` (bool) of a normalised MNIST split: pixel value > ``threshold``
    on the 0..255 scale (compared half-way between integers, so no rounding error decides)."""
    return denormalise(real.images, real.card)[:, 0] > (threshold + 0.5) / 255.0


def _as_is(images: torch.Tensor) -> torch.Tensor:
    """``RealSet.to_pixels`` of binary images: they are pixels already."""
    return images


def as_pixels(binary: torch.Tensor, card, pixels: str) -> torch.Tensor:
    """Binary images ``[N, 1, H, W]`` (bool or {0, 1}) as the evaluation sees them: float32
    {0, 1} for ``pixels="binary"`` (the reference), normalised with ``card``'s mean/std for
    ``"normalised"``."""
    if pixels == "binary":
        return binary.float()
    return normalise(binary.to(torch.uint8) * 255, card)


def binarised(real: RealSet, config: PCGMConfig) -> RealSet:
    """The split the method and its evaluation see: binary MNIST (report §3.1.1; the reference
    binarises the test split the same way), as ``as_pixels`` (``config.pixels``).
    ``images [N, 1, 28, 28]`` float32, labels unchanged."""
    images = as_pixels(binary_pixels(real, config.threshold).unsqueeze(1), real.card, config.pixels)
    if config.pixels == "normalised":
        return RealSet(images, real.labels, real.card)
    described = {"kind": "binary", "threshold_255": config.threshold}
    return RealSet(images, real.labels, real.card, described, _as_is)


def occupancy(prepared: RealSet) -> torch.Tensor:
    """The occupied pixels ``[N, H, W]`` (bool) of a split ``binarised`` made, whichever its
    ``pixels``."""
    return prepared.pixels(prepared.images)[:, 0] > 0.5


def prepare_real(train: RealSet, test: RealSet, config: PCGMConfig) -> tuple[RealSet, RealSet]:
    """Both splits ``binarised``."""
    return binarised(train, config), binarised(test, config)


def projected_images(clouds: torch.Tensor, card, pixels: str = "binary") -> torch.Tensor:
    """Clouds ``[N, P, 3]`` as the images the evaluation trains on: binary ``[N, 1, 28, 28]``
    (1 where a point falls, ``points_to_image``; the reference's ``populate_img``), as
    ``as_pixels``."""
    binary = torch.stack([points_to_image(cloud) for cloud in clouds])
    return as_pixels(binary, card, pixels)


# ALGO LOGIC: matching -------------------------------------------------------------------------


def _as_rows(gradients: list[torch.Tensor], biases: bool) -> list[torch.Tensor]:
    """Gradients shaped as the layer-wise distance reads them (``[out, ...]``: one row per
    output unit), as the reference's ``distance_wb``: MinkowskiEngine kernels
    ``[kernel volume, in, out]`` are permuted to ``[out, in, volume]``; with ``biases`` a 1-D
    gradient becomes one row ``[1, n]`` (``gradient_distance`` skips 1-D gradients, as DC)."""
    rows = [g.permute(2, 1, 0) if g.ndim == 3 else g for g in gradients]
    return [g.unsqueeze(0) if biases and g.ndim == 1 else g for g in rows]


def matching_step(
    net: torch.nn.Module,
    points: torch.Tensor,
    clouds_per_class: int,
    real_batches: list[tuple[torch.Tensor, torch.Tensor, int]],
    config: PCGMConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matching loss summed over classes and its gradient with respect to the points.

    Args:
        net: the distillation network (not modified).
        points: synthetic clouds ``[K * clouds_per_class, P, 3]``, class-major.
        clouds_per_class: synthetic clouds per class.
        real_batches: per class, ``(coordinates [sum P, 4] int32, features [sum P, 3], B)`` as
            ``distillbench_methods.pointclouds.masks_to_batch`` builds them.
        config: distance and network settings.

    Returns:
        (loss, a scalar; its gradient ``[K * clouds_per_class, P, 3]``).
    """
    kind = "mse" if config.distance == "sum_of_squares" else "layerwise"
    params = list(net.parameters())
    synthetic = points.detach().requires_grad_(True)
    total = synthetic.new_zeros(())
    for c, (coordinates, features, count) in enumerate(real_batches):
        loss_real = F.cross_entropy(
            net(coordinates, features, count), torch.full((count,), c, device=features.device)
        )
        g_real = [g.detach() for g in torch.autograd.grad(loss_real, params)]
        clouds = synthetic[c * clouds_per_class : (c + 1) * clouds_per_class]
        syn_coordinates, syn_features = batch_points(list(clouds))
        loss_syn = F.cross_entropy(
            net(syn_coordinates, syn_features, clouds_per_class),
            torch.full((clouds_per_class,), c, device=features.device),
        )
        g_syn = torch.autograd.grad(loss_syn, params, create_graph=True)
        biases = config.layerwise_biases
        distance = gradient_distance(_as_rows(g_syn, biases), _as_rows(g_real, biases), kind)
        # back-propagated class by class so only one double-backward graph lives at a time
        distance.backward()
        total += distance.detach()
    return total, synthetic.grad


# ALGO LOGIC: distillation ---------------------------------------------------------------------

# The seed streams of a synthetic set's seed: the initial clouds, each outer iteration's draws,
# the one network.
STREAMS = SeedStreams(init=Stream(0), iteration=Stream(1, ("iteration",)), network=Stream(2))


def initial_points(
    count: int, points: int, seed: int, span: float = 27.0, grid: tuple[int, int, int] = GRID
) -> torch.Tensor:
    """``[count, points, 3]`` clouds: depth 0, height and width uniform in ``[0, span)``
    (report §3.1.2; the reference draws ``28 * rand`` and its boundary check clamps values
    above ``side - 1`` before they are used)."""
    generator = torch.Generator().manual_seed(STREAMS.seed(seed, "init"))
    upper = torch.tensor([0.0, min(span, grid[1]), min(span, grid[2])])
    return torch.rand(count, points, 3, generator=generator) * upper


def distill(
    real: RealSet,
    ipc: int,
    config: PCGMConfig,
    seed: int,
    device: torch.device,
    *,
    resume: dict[str, Any] | None = None,
    after_iteration: AfterIteration | None = None,
    evaluate: EvaluateDuring | None = None,
) -> SyntheticSet:
    """Learn ``ipc`` point clouds per class from the binary real set by gradient matching.

    Args:
        real: ``prepare_real``'s binary training split, images ``[N, 1, 28, 28]``.
        ipc: synthetic clouds per class (the report: 1).
        config: hyper-parameters.
        seed: seed of this synthetic set; every draw is derived from it.
        device: where to compute.
        resume: a state from ``after_iteration``'s ``state()``; distillation continues there.
        after_iteration: called after every iteration ``it`` as ``after_iteration(it,
            metrics, state)`` with ``distill/loss`` (per class), ``distill/coord_grad_abs``
            (mean |d loss / d coordinate| before the step) and ``distill/coord_step_abs`` (mean
            |coordinate change| made by the step), both over all 3 coordinates as the
            reference logs them (report Table 2, §4.3).

    Returns:
        SyntheticSet: ``images [K * ipc, 1, 28, 28]`` the clouds' binary projections
        (normalised), ``labels [K * ipc]``, ``points`` and ``initial_points [K * ipc, P, 3]``.

    Raises:
        DivergedError: the loss or gradient became NaN/inf (``error.last_good`` keeps the set).
        ImportError: the sparse network without MinkowskiEngine.
    """
    card = real.card
    classes = card.num_classes
    occupied = first_points(occupancy(real), config.max_points)
    pools = [torch.nonzero(real.labels == c).flatten() for c in range(classes)]
    labels = torch.arange(classes).repeat_interleave(ipc)
    net = build_network(config, STREAMS.seed(seed, "network"), classes).to(device).train()

    start_points = initial_points(classes * ipc, config.points, seed, config.init_span)
    points = start_points.clone().to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([points], lr=config.lr_points, momentum=config.momentum_points)
    if resume is not None:
        with torch.no_grad():
            points.copy_(resume["points"].to(device))
        optimizer.load_state_dict(resume["optimizer"])

    def as_synthetic_set() -> SyntheticSet:
        final = clamp_to_grid(points.detach().cpu())
        return SyntheticSet(
            images=projected_images(final, card, config.pixels),
            labels=labels.clone(),
            method="pc-gm",
            dataset=card.name,
            ipc=ipc,
            seed=seed,
            extras={"points": final, "initial_points": start_points.clone()},
        )

    loop = OuterLoop(
        config.iterations,
        resume,
        after_iteration,
        synthetic_set=as_synthetic_set,
        state=lambda: {
            "points": points.detach().cpu().clone(),
            "optimizer": optimizer.state_dict(),
        },
    )
    for it in loop:
        with torch.no_grad():  # boundary check (the grid's depth is 1, so depth becomes 0)
            points.copy_(clamp_to_grid(points))
        generator = torch.Generator().manual_seed(STREAMS.seed(seed, "iteration", it))
        real_batches = []
        for pool in pools:
            pick = pool[torch.randperm(len(pool), generator=generator)[: config.batch_real]]
            coordinates, features = masks_to_batch(occupied[pick])
            real_batches.append((coordinates.to(device), features.to(device), len(pick)))
        loss, points.grad = matching_step(net, points, ipc, real_batches, config)
        loop.check_finite(
            f"matching loss at iteration {it}",
            loss.item(),
            points.grad,
            hint="lower method.lr_points or check the data",
        )
        before = points.detach().clone()
        optimizer.step()
        metrics = {
            "distill/loss": loss.item() / classes,
            "distill/coord_grad_abs": points.grad.abs().mean().item(),
            "distill/coord_step_abs": (points.detach() - before).abs().mean().item(),
        }
        loop.report(it, metrics)
    return loop.synthetic_set()


def point_cloud_artifacts(synset: SyntheticSet, card, folder: Path) -> list[Path]:
    """The contract's ``Artifacts``: ``points.png``, the clouds at the start and the end
    of distillation (``distillbench_methods.pointclouds.save_point_cloud_render``)."""
    render = save_point_cloud_render(
        synset.extras["initial_points"],
        synset.extras["points"],
        synset.labels,
        card.classes,
        folder / "points.png",
    )
    return [render]


METHOD = Method(
    name="pc-gm",
    config_class=PCGMConfig,
    kind=Kind.DISTILLED,
    distill=distill,
    prepare_real=prepare_real,
    artifacts=point_cloud_artifacts,
    preflight=preflight,
    description="point-cloud gradient matching, sparse (MinkowskiEngine) or dense network",
)
