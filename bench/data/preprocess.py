"""The choice of how real images become network inputs, shared by MTT, its expert trajectories
and the baselines compared with it (``prepare_real`` of those methods).

Three choices (``PREPROCESSING``), each applied identically to the training and the test split:

- ``"normalise"``: ``ToTensor`` + ``Normalize(card mean, card std)``, what ``load_real`` gives;
  the DC reference's and the EuroSAT work's distillation (its ``distillation.py`` without
  ``--zca``, julius-lautz/imp_dataset_distillation@4b8bf43).
- ``"zca"``: kornia's ``ZCAWhitening(eps=0.1)`` fitted on the training split's [0, 1] pixels
  (``bench/data/zca.py``); MTT's CIFAR protocol (GeorgeCazenavette/mtt-distillation@50dccea,
  ``--zca``).
- ``"none"``: ``ToTensor`` only, pixels in [0, 1] without normalisation. The EuroSAT work's
  ``get_full_dataset`` does this when its ``args.zca`` is true: its ``--zca`` flag never
  whitens, it only drops the normalisation. Its ``expert_training.py`` declares ``--zca`` with
  ``action="store_false"``, so its experts train on these raw pixels by default.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from bench.core.errors import ConfigError
from bench.data.real import RealSet
from bench.data.zca import zca_description, zca_whiten

Preprocessing = Literal["normalise", "zca", "none"]
PREPROCESSING: tuple[str, ...] = ("normalise", "zca", "none")

NONE_DESCRIPTION = {"kind": "none", "input": "pixels in [0, 1] (ToTensor only, no normalisation)"}
"""``RealSet.preprocessing`` of ``"none"`` (what expert manifests record)"""


def check_preprocessing(value: str, where: str) -> None:
    """Raise ``ConfigError`` naming ``where`` unless ``value`` is one of ``PREPROCESSING``."""
    if value not in PREPROCESSING:
        raise ConfigError(f"{where}: unknown preprocessing {value!r}; choose {PREPROCESSING}")


def describe(kind: str, train: RealSet) -> dict:
    """``preprocessing_description()`` of ``train`` (a normalised split from ``load_real``) after
    ``prepare_real`` with ``kind``, without computing it (expert manifests are checked with it)."""
    check_preprocessing(kind, "preprocessing")
    if kind == "zca":
        return zca_description(train)
    if kind == "none":
        return dict(NONE_DESCRIPTION)
    return dataclasses.replace(train, preprocessing={}).preprocessing_description()


def raw_pixels(split: RealSet) -> RealSet:
    """``split`` (normalised with its card's mean/std, ``load_real``) as ``ToTensor`` pixels:
    ``uint8 / 255`` float32 in [0, 1], ``[N, C, H, W]``.

    The normalisation is undone and the result rounded back to the 256 levels of the files, so
    the values are bit-identical to ``torchvision.transforms.ToTensor`` of the decoded image.
    """
    card = split.card
    mean = torch.tensor(card.mean).view(1, -1, 1, 1)
    std = torch.tensor(card.std).view(1, -1, 1, 1)
    levels = (split.images * std + mean).mul_(255.0).round_().clamp_(0.0, 255.0)
    return dataclasses.replace(
        split,
        images=levels.div_(255.0),
        preprocessing=dict(NONE_DESCRIPTION),
        to_pixels=_clamped,
    )


def _clamped(images: torch.Tensor) -> torch.Tensor:
    # module level, not a lambda: a RealSet is pickled to the processes of --parallel-sets
    return images.detach().cpu().float().clamp(0.0, 1.0)


def prepare_real(train: RealSet, test: RealSet, config) -> tuple[RealSet, RealSet]:
    """``prepare_real`` of the methods whose config has a ``preprocessing`` field (MTT, its
    experts and the baselines compared with it): both splits as ``config.preprocessing`` says
    (module docstring); ``"zca"`` is fitted on ``train`` only.

    Raises:
        ConfigError: an unknown ``config.preprocessing``.
    """
    kind = config.preprocessing
    check_preprocessing(kind, "method.preprocessing")
    if kind == "zca":
        return zca_whiten(train, test)
    if kind == "none":
        return raw_pixels(train), raw_pixels(test)
    return train, test
