"""Batched evaluation: train the evaluation networks of one synthetic set together.

The ``num_eval`` networks of one architecture are identical in shape, so their parameters are
stacked (``torch.func.stack_module_state``) and one ``torch.vmap`` of
``torch.func.functional_call`` runs all of them per step: one batched computation instead of
``num_eval`` small ones, which is where evaluation on small synthetic sets loses its time.

Nothing about any single network changes: network ``k`` is initialised from its own seed, and
its own generator draws its data order and augmentation exactly as ``train_on_synthetic`` does
for it alone; SGD (momentum, weight decay) is element-wise, so one optimizer over the stacked
tensors makes the same update as one optimizer per network. The results equal the sequential
evaluation's up to floating-point summation order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from bench.core.seeds import derive_seed
from bench.data.real import DatasetCard, RealSet
from bench.data.synthetic import SyntheticSet
from bench.evaluation.networks import build_network
from bench.evaluation.schedule import train_by_schedule, training_batches

AUGMENTED_TEST_BATCH = 256
"""test images augmented together (``EvalProtocol.augment_test``): the point-cloud reference's
test loader batch, whose mean fills the crop"""


class NetworkStack:
    """``M`` networks of one architecture as stacked parameters ``[M, ...]`` and one stateless
    copy of the module to call them through.

    Args:
        nets: the networks (same architecture, on one device).
    """

    def __init__(self, nets: list[torch.nn.Module]) -> None:
        self.size = len(nets)
        params, buffers = stack_module_state(nets)
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        self.module = copy.deepcopy(nets[0]).to("meta")

    def __call__(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Logits ``[M, B, K]``: for inputs ``[M, B, C, H, W]`` network ``m`` sees ``x[m]``;
        with ``shared``, every network sees the same ``x [B, C, H, W]``."""

        def one(params, buffers, inputs):
            return functional_call(self.module, (params, buffers), (inputs,))

        return torch.vmap(one, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> NetworkStack:
        """Train (``True``) or eval mode for every network, as ``nn.Module.train``."""
        self.module.train(mode)
        return self


def train_many(
    model: str,
    synset: SyntheticSet,
    card: DatasetCard,
    protocol,
    seeds: list[int],
    device: torch.device,
    on_epoch: Callable[[], None] | None = None,
) -> NetworkStack:
    """Train ``len(seeds)`` fresh ``model`` networks on ``synset`` together; network ``k`` is
    exactly what ``train_on_synthetic(model, synset, card, protocol, seeds[k], device)``
    trains alone (same initialisation, data order and augmentation draws).

    ``protocol`` is an ``EvalProtocol``. Returns the trained stack (train mode).
    """
    nets = [
        build_network(model, card.channels, card.num_classes, card.image_size, derive_seed(s, 0))
        for s in seeds
    ]
    stack = NetworkStack([net.to(device).train() for net in nets]).train()
    generators = [torch.Generator().manual_seed(derive_seed(s, 1)) for s in seeds]
    images, labels = synset.images.to(device), synset.labels.to(device)

    def epoch_losses():
        passes = [training_batches(images, labels, protocol, g, device) for g in generators]
        for batches in zip(*passes, strict=True):  # the k-th mini-batch of every network
            xs, ys = zip(*batches, strict=True)
            logits = stack(torch.stack(xs))
            y = torch.stack(ys)
            # the sum of the networks' mean losses: each network's gradient is its own loss's
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            yield loss.view(stack.size, -1).mean(dim=1).sum()

    train_by_schedule(stack.params.values(), protocol, epoch_losses, on_epoch)
    return stack


@torch.inference_mode()
def test_accuracy_many(
    stack: NetworkStack,
    test: RealSet,
    batch: int,
    device: torch.device,
    augments: list[Callable[[torch.Tensor], torch.Tensor] | None] | None = None,
) -> list[float]:
    """Top-1 accuracy in percent of every network of ``stack`` on the real ``test`` split;
    with ``augments`` (one ``evaluate.test_augmenter`` per network, all set) each network sees
    its own augmented copy, ``AUGMENTED_TEST_BATCH`` test images at a time."""
    stack.train(False)
    augmented = augments is not None and all(a is not None for a in augments)
    batch = AUGMENTED_TEST_BATCH if augmented else batch
    correct = torch.zeros(stack.size, dtype=torch.int64)
    for start in range(0, len(test.labels), batch):
        x = test.images[start : start + batch].to(device)
        y = test.labels[start : start + batch].to(device)
        if augmented:
            logits = stack(torch.stack([augment(x) for augment in augments]))
        else:
            logits = stack(x, shared=True)
        correct += (logits.argmax(dim=2) == y).sum(dim=1).cpu()
    return [100.0 * int(c) / len(test.labels) for c in correct]
