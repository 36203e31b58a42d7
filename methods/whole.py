"""The whole-dataset upper bound of DC's Table 1: the evaluation network trained on the entire
real training split instead of a synthetic set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.api import (
    Kind,
    Method,
    Preprocessing,
    RealSet,
    SyntheticSet,
    check_preprocessing,
    prepare_real,
)


@dataclass(frozen=True)
class WholeConfig:
    """Nothing to choose: the training set is the whole real training split. How the network
    is trained is the recipe's evaluation protocol."""

    preprocessing: Preprocessing = "normalise"
    """train and test on data preprocessed this way (``bench/data/preprocess.py``), as the
    method it bounds (MTT's recipes)"""

    def __post_init__(self) -> None:
        check_preprocessing(self.preprocessing, "method.preprocessing")


def whole_training_set(
    real: RealSet,
    ipc: int | None,
    config: WholeConfig,
    seed: int,
    device: torch.device,
    **_: Any,
) -> SyntheticSet:
    """The real training split as the set to evaluate (images ``[N, C, H, W]``, labels ``[N]``,
    not copied). The contract's ``Distill``; ``ipc`` is ``None``."""
    return SyntheticSet(
        images=real.images,
        labels=real.labels,
        method="whole",
        dataset=real.card.name,
        ipc=None,
        seed=seed,
    )


METHOD = Method(
    name="whole",
    config_class=WholeConfig,
    kind=Kind.WHOLE,
    distill=whole_training_set,
    prepare_real=prepare_real,
    description="the whole real training split (upper bound)",
)
