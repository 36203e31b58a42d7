"""The training schedule of the shared evaluation, for one network or a stack of them, and the
mini-batches of one pass over a synthetic set.

As ``evaluate_synset`` of the DC reference code (VICO-UoE/DatasetCondensation@53f63a6,
``utils.py``): ``epochs + 1`` passes over the training set, SGD with momentum and weight decay,
the learning rate multiplied by 0.1 after ``epochs // 2 + 1`` passes, where the reference builds
a new optimizer (which also resets the momentum buffers); so does this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from bench.data.augment import dc_augment
from bench.data.dsa import DSAParams, dsa_augment


def training_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    protocol,
    generator: torch.Generator,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over a training set (images ``[N, C, H, W]``, labels ``[N]``, on ``device``):
    ``(x [b, C, H, W], y [b])`` mini-batches of ``protocol.batch_train`` in a random order, with
    DC augmentation when ``protocol.augmentation == "dc"`` and DSA (``protocol.dsa_strategy``,
    ``bench/dsa.py``; corners aligned unless ``protocol.dsa_align_corners`` is False) when it is
    ``"dsa"``; the order and every augmentation come from
    ``generator``, so a network's draws are the same whether it trains alone or stacked with
    others (``bench/batched.py``)."""
    order = torch.randperm(len(labels), generator=generator).to(device)
    for start in range(0, len(labels), protocol.batch_train):
        batch = order[start : start + protocol.batch_train]
        x = images[batch]
        if protocol.augmentation == "dc":
            x = dc_augment(x, generator, protocol.aug_crop, protocol.aug_scale, protocol.aug_rotate)
        elif protocol.augmentation == "dsa":
            # an EvalProtocol says how DSA resamples; other callers (MTT's expert training) get
            # MTT's aligned corners
            corners = DSAParams(align_corners=getattr(protocol, "dsa_align_corners", True))
            x = dsa_augment(x, generator, protocol.dsa_strategy, corners)
        yield x, labels[batch]


def train_by_schedule(
    params: Iterable[torch.Tensor],
    protocol,
    epoch_losses: Callable[[], Iterator[torch.Tensor]],
    on_epoch: Callable[[], None] | None = None,
) -> None:
    """Run the schedule on ``params``: every pass takes one SGD step per loss that
    ``epoch_losses()`` yields (each loss is computed after the previous step).

    ``protocol`` is an ``EvalProtocol`` (``epochs``, ``lr``, ``momentum``, ``weight_decay``);
    ``on_epoch`` is called after every pass.
    """
    params = list(params)

    def new_optimizer(lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            params, lr=lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay
        )

    lr = protocol.lr
    optimizer = new_optimizer(lr)
    for epoch in range(protocol.epochs + 1):
        for loss in epoch_losses():
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if epoch == protocol.epochs // 2 + 1:
            lr *= 0.1
            optimizer = new_optimizer(lr)
        if on_epoch is not None:
            on_epoch()
