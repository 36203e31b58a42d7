"""The whole-dataset upper bound of DC's Table 1: the evaluation network trained on the entire
real training split instead of a synthetic set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.data import RealSet
from bench.synthetic import SyntheticSet
from bench.zca import prepare_real  # noqa: F401  (the method's data view: ZCA if config.zca)


@dataclass(frozen=True)
class WholeConfig:
    """Nothing to choose: the training set is the whole real training split. How the network
    is trained is the recipe's evaluation protocol."""

    zca: bool = False
    """train and test on ZCA-whitened data (``bench/zca.py``), as MTT's baselines"""


def whole_training_set(
    real: RealSet,
    ipc: int | None,
    config: WholeConfig,
    seed: int,
    device: torch.device,
    resume: dict[str, Any] | None = None,
    after_iteration: Any = None,
) -> SyntheticSet:
    """The real training split as the set to evaluate (images ``[N, C, H, W]``, labels ``[N]``,
    not copied). Same signature as every method's ``distill``; ``ipc`` is ``None``."""
    return SyntheticSet(real.images, real.labels, "whole", real.card.name, None, seed, "")
