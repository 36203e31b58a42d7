"""Coreset baselines of DC's Table 1: ``ipc`` real images per class, chosen at random or by
herding, evaluated by the same shared evaluation as every distilled set.

- Random: per class, ``ipc`` training images drawn uniformly without replacement by a generator
  seeded from the run's seed.
- Herding (Welling, "Herding dynamical weights to learn", ICML 2009; the greedy form used for
  exemplar selection by Rebuffi et al., iCaRL, CVPR 2017): per class, with features ``f_i`` of
  the class's training images and their mean ``mu``, pick images one at a time so that the mean of
  the picked features stays as close as possible to ``mu``:
      i_k = argmin_{i not picked} || mu - (f_i + sum_{j<k} f_{i_j}) / k ||_2 .
  As DC's baseline, the features are the penultimate-layer features (``embed``) of a ConvNet-3
  trained on the whole training set.

Both return a ``SyntheticSet`` of real images (class-major) with ``indices`` into the real
training split, so the exact images chosen are recorded with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from bench.api import (
    NETWORKS,
    SPEED_ONLY,
    ConfigError,
    Kind,
    Method,
    Preprocessing,
    RealSet,
    SeedStreams,
    Stream,
    SyntheticSet,
    check_preprocessing,
    prepare_real,
    require_positive,
)


@dataclass(frozen=True)
class RandomConfig:
    """Random selection has no hyper-parameters besides the run's seed and ipc."""

    preprocessing: Preprocessing = "normalise"
    """select from, and evaluate on, data preprocessed this way (``bench/data/preprocess.py``):
    the baseline of a method that preprocesses otherwise (MTT: ``"zca"`` on CIFAR-10, ``"none"``
    or ``"normalise"`` on EuroSAT) under the same protocol"""

    def __post_init__(self) -> None:
        check_preprocessing(self.preprocessing, "method.preprocessing")


@dataclass(frozen=True)
class HerdingConfig:
    """The feature extractor herding selects in: a network trained on the whole training set by
    the shared evaluation's training loop (SGD, momentum 0.9, lr 0.01 decayed x0.1 halfway)."""

    model: str = "ConvNet"
    """feature extractor architecture (DC: ConvNet-3)"""
    feature_epochs: int = 30
    """training epochs of the feature extractor on the whole training set (the DC paper does not
    state its schedule; the network passes ``feature_epochs + 1`` times, as the evaluation)"""
    batch_train: int = 256
    """mini-batch size when training the feature extractor"""
    preprocessing: Preprocessing = "normalise"
    """as ``RandomConfig.preprocessing``"""
    batch_features: int = field(default=1000, metadata=SPEED_ONLY)
    """batch size when computing features (speed only)"""

    def __post_init__(self) -> None:
        check_preprocessing(self.preprocessing, "method.preprocessing")
        if self.model not in NETWORKS:
            raise ConfigError(
                f"method.model: unknown network {self.model!r}; available: {', '.join(NETWORKS)}"
            )
        if self.feature_epochs < 0:
            raise ConfigError(f"method.feature_epochs must be >= 0, got {self.feature_epochs}")
        require_positive(self, ("batch_train", "batch_features"), "method")


def random_indices(labels: torch.Tensor, ipc: int, num_classes: int, seed: int) -> torch.Tensor:
    """``[num_classes * ipc]`` int64 indices into ``labels`` (``[N]``): ``ipc`` per class,
    class-major, drawn without replacement from a generator seeded with ``seed``.

    Raises:
        ConfigError: a class has fewer than ``ipc`` images.
    """
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels.cpu() == c).squeeze(1)
        _require_enough(members, ipc, c)
        picks.append(members[torch.randperm(len(members), generator=generator)[:ipc]])
    return torch.cat(picks)


def herding_order(features: torch.Tensor, count: int) -> torch.Tensor:
    """Greedy herding (see module docstring) on ``features [n, d]``: the first ``count`` picks,
    ``[count]`` int64 row indices, distinct. Deterministic: ties go to the lowest index."""
    features = features.double()
    mu = features.mean(dim=0)
    picked_sum = torch.zeros_like(mu)
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    order = []
    for k in range(1, count + 1):
        distance = (mu - (picked_sum + features) / k).norm(dim=1)
        distance[~available] = float("inf")
        i = int(torch.argmin(distance))
        order.append(i)
        available[i] = False
        picked_sum += features[i]
    return torch.tensor(order, dtype=torch.int64)


def herding_indices(
    features: torch.Tensor, labels: torch.Tensor, ipc: int, num_classes: int
) -> torch.Tensor:
    """``[num_classes * ipc]`` indices into ``features [N, d]`` / ``labels [N]`` chosen by
    herding within each class, class-major.

    Raises:
        ConfigError: a class has fewer than ``ipc`` images.
    """
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels.cpu() == c).squeeze(1)
        _require_enough(members, ipc, c)
        picks.append(members[herding_order(features[members], ipc)])
    return torch.cat(picks)


def _require_enough(members: torch.Tensor, ipc: int, c: int) -> None:
    if len(members) < ipc:
        raise ConfigError(f"class {c} has {len(members)} training images, fewer than ipc={ipc}")


def _coreset(real: RealSet, indices: torch.Tensor, method: str, ipc: int, seed: int):
    return SyntheticSet(
        images=real.images[indices].cpu().clone(),
        labels=real.labels[indices].cpu().clone(),
        method=method,
        dataset=real.card.name,
        ipc=ipc,
        seed=seed,
        extras={"indices": indices},
    )


STREAMS = SeedStreams(selection=Stream(0))
"""the seed stream of a synthetic set's seed: random's indices, herding's feature extractor"""


def select_random(
    real: RealSet,
    ipc: int,
    config: RandomConfig,
    seed: int,
    device: torch.device,
    **_: Any,
) -> SyntheticSet:
    """Random coreset: ``ipc`` real images per class (``[K * ipc, C, H, W]``, class-major),
    drawn from the ``selection`` seed stream. The contract's ``Distill``; it has no outer loop,
    so ``resume``, ``after_iteration`` and ``evaluate`` are ignored."""
    indices = random_indices(
        real.labels, ipc, real.card.num_classes, STREAMS.seed(seed, "selection")
    )
    return _coreset(real, indices, "random", ipc, seed)


def select_herding(
    real: RealSet,
    ipc: int,
    config: HerdingConfig,
    seed: int,
    device: torch.device,
    **_: Any,
) -> SyntheticSet:
    """Herding coreset: train ``config.model`` on the whole ``real`` training split (initial
    parameters and data order from ``seed``), compute its ``embed`` features ``[N, d]`` and
    herd ``ipc`` images per class (``[K * ipc, C, H, W]``, class-major)."""
    from bench.api import EvalProtocol, train_on_synthetic
    from distillbench_methods.whole import WholeConfig, whole_training_set

    card = real.card
    whole = whole_training_set(real, None, WholeConfig(), seed, device)
    protocol = EvalProtocol(
        models=(config.model,), epochs=config.feature_epochs, batch_train=config.batch_train
    )
    with tqdm(
        total=config.feature_epochs + 1, desc="herding: train feature extractor", unit="epoch"
    ) as bar:
        net = train_on_synthetic(
            config.model, whole, card, protocol, STREAMS.seed(seed, "selection"), device, bar.update
        )
    features = embed_all(net, real.images, config.batch_features, device)
    indices = herding_indices(features, real.labels, ipc, card.num_classes)
    return _coreset(real, indices, "herding", ipc, seed)


@torch.inference_mode()
def embed_all(net: torch.nn.Module, images: torch.Tensor, batch: int, device: torch.device):
    """``net.embed`` of every image in ``images [N, C, H, W]``, in eval mode: ``[N, d]`` on the
    CPU."""
    net.eval()
    out = [
        net.embed(images[start : start + batch].to(device)).cpu()
        for start in range(0, len(images), batch)
    ]
    return torch.cat(out)


RANDOM = Method(
    name="random",
    config_class=RandomConfig,
    kind=Kind.CORESET,
    distill=select_random,
    prepare_real=prepare_real,
    description="random coreset: ipc real images per class drawn uniformly",
)
HERDING = Method(
    name="herding",
    config_class=HerdingConfig,
    kind=Kind.CORESET,
    distill=select_herding,
    prepare_real=prepare_real,
    description="herding coreset on the features of a network trained on the real set",
)
