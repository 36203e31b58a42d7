"""A minimal distribution-matching method, as an example of a method outside the suite.

Sketch of Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023
(arXiv 2110.04181), Eq. 4 without DSA: each outer iteration draws a fresh randomly initialised
ConvNet-3 and moves the synthetic images so that, per class, the mean of their embeddings
matches the mean embedding of a batch of real images:

    min_S  E_theta  sum_c || mean_{x in T_c} psi_theta(x) - mean_{s in S_c} psi_theta(s) ||^2

It is an illustration of the method contract (``bench.spec.method``), not a faithful
reproduction of the reference code (no DSA, fewer iterations): its recipe is labelled so. DM
itself is built into the suite as the method ``dm`` (``methods/dm.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bench.api import (
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
    require_positive,
)


@dataclass(frozen=True)
class DMConfig:
    """Hyper-parameters of the sketch (the paper's values where it has them)."""

    iterations: int = 200
    """outer iterations: one freshly initialised network each"""
    lr_img: float = 1.0
    """SGD learning rate of the synthetic images (the paper's)"""
    batch_real: int = 256
    """real images per class per iteration (the paper's)"""
    model: str = "ConvNet"
    """embedding network (``bench.evaluation.networks``)"""

    def __post_init__(self) -> None:
        require_positive(self, ("iterations", "batch_real"), "method")
        if not (math.isfinite(self.lr_img) and self.lr_img > 0):
            raise ConfigError(f"method.lr_img must be a positive number, got {self.lr_img}")


# The seed streams of a synthetic set's seed, checked against the runner's when declared.
STREAMS = SeedStreams(
    init=Stream(0), iteration=Stream(1, ("iteration",)), network=Stream(2, ("iteration",))
)


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
    """Learn ``ipc`` images per class (``[K * ipc, C, H, W]``, class-major labels ``[K * ipc]``)
    starting from random real images; the contract's ``Distill``.

    Raises:
        DivergedError: the loss became NaN/inf (the last good set is kept).
    """
    card = real.card
    generator = torch.Generator().manual_seed(STREAMS.seed(seed, "init"))
    pools = [torch.nonzero(real.labels == c).flatten() for c in range(card.num_classes)]
    start = torch.cat([p[torch.randperm(len(p), generator=generator)[:ipc]] for p in pools])
    images = real.images[start].clone().to(device).requires_grad_(True)
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    optimizer = torch.optim.SGD([images], lr=config.lr_img, momentum=0.5)
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
            method="dm-example",
            dataset=card.name,
            ipc=ipc,
            seed=seed,
        ),
        state=lambda: {
            "images": images.detach().cpu().clone(),
            "optimizer": optimizer.state_dict(),
        },
    )
    for it in loop:
        draws = torch.Generator().manual_seed(STREAMS.seed(seed, "iteration", it))
        net = build_network(
            config.model,
            card.channels,
            card.num_classes,
            card.image_size,
            STREAMS.seed(seed, "network", it),
        ).to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        loss = torch.zeros((), device=device)
        for c, pool in enumerate(pools):
            pick = pool[torch.randperm(len(pool), generator=draws)[: config.batch_real]]
            real_mean = net.embed(real.images[pick].to(device)).mean(0)
            syn_mean = net.embed(images[c * ipc : (c + 1) * ipc]).mean(0)
            loss = loss + ((real_mean - syn_mean) ** 2).sum()
        loop.check_finite(
            f"matching loss at iteration {it}", loss.item(), hint="lower method.lr_img"
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loop.report(it, {"distill/loss": loss.item() / card.num_classes})
    return loop.synthetic_set()


METHOD = Method(
    name="dm-example",
    config_class=DMConfig,
    kind=Kind.DISTILLED,
    distill=distill,
    description="example plugin: a minimal distribution-matching sketch (not a reproduction)",
)
