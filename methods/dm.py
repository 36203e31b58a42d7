"""Dataset Condensation with Distribution Matching (DM).

Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023 (arXiv 2110.04181);
reference code VICO-UoE/DatasetCondensation at commit 53f63a6 (``main_DM.py``, ``utils.py``'s
``DiffAugment``).

The synthetic set S is learned so that, in the embedding space of randomly initialised networks,
the mean embedding of each class's synthetic images matches that of a batch of its real images
(paper Eq. 4, with DSA applied to both sides with one shared transform):

    min_S  E_{theta ~ P_theta, omega}  sum_c || mean_{x in T_c} psi_theta(A(x, omega))
                                             - mean_{s in S_c} psi_theta(A(s, omega)) ||^2

Each iteration (``iterations``, 20,000 in the reference) draws a fresh ConvNet-3 whose weights
are frozen, sums the per-class squared distances of the mean embeddings (``embed``: the features
before the classifier; 256 real images per class, DSA in the siamese mode from one seed per
class) and takes one SGD step on S (lr 1, momentum 0.5). S starts from random real images.

Reference (53f63a6) -> this code -> same or different, why:

- ``--Iteration 20000``, ``for it in range(Iteration + 1)``: the final evaluation (at the top of
  the loop) sees the set after 20,000 updates; the file it saves gets one more ->
  ``iterations = 20000`` -> same for what is measured (the set after 20,000 updates)
- ``--lr_img 1``, ``momentum=0.5``, ``--batch_real 256``, ``--init real`` -> defaults -> same
- ``--dsa_strategy color_crop_cutout_flip_scale_rotate`` (the script's default; the README's
  command gives it for CIFAR-10) -> ``dsa_strategy`` -> same
- ``seed = int(time.time() * 1000) % 100000`` per class, ``DiffAugment(.., seed=seed)`` on the
  real and the synthetic batch -> an integer in ``[0, 100000)`` drawn from the iteration's stream
  per class, ``dsa_augment(.., DSADraws.siamese(seed), .., DSAParams(align_corners=False))`` ->
  same transforms (checked bit for bit against DC's ``DiffAugment``:
  ``scripts/reference_check/dsa.py --flavour dc``), seeded instead of clock-driven
- ``get_images``: ``np.random.permutation`` of the class's indices -> ``torch.randperm`` from the
  iteration's stream -> same distribution, seeded draws (``--resume`` is exact)
- ConvNet without BatchNorm: per class ``embed(real).detach()`` and ``embed(syn)`` -> same; the
  reference's BatchNorm branch (all classes in one batch) -> not implemented: a BatchNorm model
  is refused
- evaluation: ``evaluate_synset`` with DSA (per-call mode, the same strategy), 1000 epochs ->
  recipe ``[eval]`` ``augmentation = "dsa"`` -> same protocol; the shared evaluation's DSA aligns
  the corners of scale and rotate as MTT's copy does, DC's does not: the same map, other float
  rounding (6e-6)

Checked side by side with ``main_DM.py``'s update (``scripts/reference_check/dm.py``,
``leaderboards/fidelity.md``): the synthetic images are bit-identical after 50 updates at ipc 1
and 10 at ipc 10.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from bench.api import (
    NETWORKS,
    AfterIteration,
    ConfigError,
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
    require_learning_rates,
    require_positive,
)
from distillbench_methods.gm import (
    check_data,
    draw_dsa_seeds,
    draw_real_batches,
    dsa_strategy,
    initial_synthetic_images,
    siamese_pair,
)

# ALGO LOGIC: configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class DMConfig:
    """DM hyper-parameters; the defaults are ``main_DM.py``'s (53f63a6)."""

    iterations: int = 20000
    """synthetic-set updates, each with a freshly initialised network (reference
    ``--Iteration``)"""
    lr_img: float = 1.0
    """SGD learning rate of the synthetic images"""
    momentum_img: float = 0.5
    """SGD momentum of the synthetic images"""
    batch_real: int = 256
    """real images per class per update"""
    init: Literal["noise", "real"] = "real"
    """initial synthetic images: randomly drawn real images, or Gaussian noise"""
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    """DSA parts joined by ``"_"``, applied to the real and synthetic batch of a class with one
    shared transform; ``"none"``: no augmentation"""
    model: str = "ConvNet"
    """embedding network (frozen, freshly initialised every update); no BatchNorm"""

    def __post_init__(self) -> None:
        if self.model not in NETWORKS or "BN" in self.model:
            raise ConfigError(
                f"method.model: {self.model!r} is not a network DM can embed with here "
                f"(the reference's BatchNorm branch is not implemented); "
                f"available: {', '.join(m for m in NETWORKS if 'BN' not in m)}"
            )
        require_positive(self, ("iterations", "batch_real"), "method")
        require_learning_rates(self, "method")
        check_dsa_strategy(self.dsa_strategy, "method.dsa_strategy")


# ALGO LOGIC: distillation -----------------------------------------------------------------

# The seed streams of a synthetic set's seed: the initial images, each update's real batches
# and DSA seeds, each update's network.
STREAMS = SeedStreams(
    init=Stream(0), iteration=Stream(1, ("iteration",)), network=Stream(2, ("iteration",))
)


def mean_embedding_loss(
    net: torch.nn.Module,
    real_batches: torch.Tensor,
    images: torch.Tensor,
    ipc: int,
    strategy: str | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """Paper Eq. 4 for one network: ``sum_c ||mean embed(A(T_c)) - mean embed(A(S_c))||^2``.

    Args:
        net: a network with ``embed`` (``[B, C, H, W]`` -> ``[B, D]``), parameters frozen.
        real_batches: ``[K, batch_real, C, H, W]``, one real batch per class.
        images: the synthetic set ``[K * ipc, C, H, W]``, class-major, requiring grad.
        strategy: DSA strategy (None: no augmentation; ``gm.dsa_strategy``); each class's
            real and synthetic batch share one transform,
            seeded by an integer in ``[0, 100000)`` drawn from ``generator`` (the reference's
            clock-driven ``seed``).
    Returns:
        the scalar loss, differentiable in ``images``.
    """
    augment = strategy is not None
    seeds = draw_dsa_seeds(len(real_batches), generator) if augment else None
    loss = torch.zeros((), device=images.device)
    for c, real in enumerate(real_batches):
        synthetic = images[c * ipc : (c + 1) * ipc]
        if augment:
            real, synthetic = siamese_pair(real, synthetic, seeds[c], strategy)
        real_mean = net.embed(real).detach().mean(dim=0)
        loss = loss + ((real_mean - net.embed(synthetic).mean(dim=0)) ** 2).sum()
    return loss


def distill(
    real: RealSet,
    ipc: int,
    config: DMConfig,
    seed: int,
    device: torch.device,
    *,
    resume: dict[str, Any] | None = None,
    after_iteration: AfterIteration | None = None,
    evaluate: EvaluateDuring | None = None,
) -> SyntheticSet:
    """Learn a synthetic set of ``ipc`` images per class from ``real`` by distribution matching.

    Args:
        real: the real training split, images ``[N, C, H, W]`` normalised, labels ``[N]``.
        ipc: images per class.
        config: DM hyper-parameters.
        seed: seed of this synthetic set; every draw is derived from it.
        device: where to compute.
        resume: a state from ``after_iteration``'s ``state()`` (``iteration``, ``images``,
            ``optimizer``); distillation continues from there.
        after_iteration: called after every update ``it`` (0-based) with
            ``{"distill/loss": ...}`` (the loss over the number of classes, as the reference
            prints it) and the resumable state.
        evaluate: unused (DM's final set is evaluated by the runner).

    Returns:
        SyntheticSet with images ``[K * ipc, C, H, W]`` float32 and class-major labels
        ``[K * ipc]`` int64.

    Raises:
        DivergedError: the loss became NaN/inf; the last good set is kept.
    """
    card = real.card
    real_by_class = [real.images[real.labels == c].to(device) for c in range(card.num_classes)]
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    # the initial images as DC's: the same seed stream and draws
    images = initial_synthetic_images(real_by_class, ipc, config, seed).to(device)
    images.requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=config.lr_img, momentum=config.momentum_img)
    if resume is not None:
        with torch.no_grad():
            images.copy_(resume["images"].to(device))
        optimizer.load_state_dict(resume["optimizer"])
    loop = OuterLoop(
        config.iterations,
        resume,
        after_iteration,
        synthetic_set=lambda: SyntheticSet(
            images=images.detach().cpu().clone(),
            labels=labels.clone(),
            method="dm",
            dataset=card.name,
            ipc=ipc,
            seed=seed,
        ),
        state=lambda: {
            "images": images.detach().cpu().clone(),
            "optimizer": optimizer.state_dict(),
        },
    )
    strategy = dsa_strategy(config)
    for it in loop:
        generator = torch.Generator().manual_seed(STREAMS.seed(seed, "iteration", it))
        net = build_network(
            config.model,
            card.channels,
            card.num_classes,
            card.image_size,
            STREAMS.seed(seed, "network", it),
        )
        net = net.to(device).train().requires_grad_(False)
        real_batches = draw_real_batches(real_by_class, config.batch_real, generator)
        loss = mean_embedding_loss(net, real_batches, images, ipc, strategy, generator)
        loop.check_finite(
            f"matching loss at iteration {it}", loss.item(), hint="lower method.lr_img"
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loop.report(it, {"distill/loss": loss.item() / card.num_classes})
    return loop.synthetic_set()


METHOD = Method(
    name="dm",
    config_class=DMConfig,
    kind=Kind.DISTILLED,
    distill=distill,
    check_data=check_data,  # DC's: every class must hold batch_real images
    description="Dataset Condensation with Distribution Matching (Zhao & Bilen, WACV 2023)",
)
