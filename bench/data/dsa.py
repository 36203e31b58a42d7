"""Differentiable siamese augmentation (DSA), batched and seeded.

DSA (Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021)
augments images with transforms that are differentiable with respect to the pixels, so the
gradient of a loss on augmented synthetic images reaches the synthetic images themselves. MTT
(Cazenavette et al., "Dataset Distillation by Matching Training Trajectories", CVPR 2022) uses
it both while distilling and when training evaluation networks, with the strategy
``"color_crop_cutout_flip_scale_rotate"``.

This follows ``DiffAugment`` and ``ParamDiffAug`` in ``utils.py`` of
GeorgeCazenavette/mtt-distillation, in its per-call mode (``seed=-1``, ``aug_mode='S'``): the
strategy string is split on ``"_"``, ONE of its parts is drawn uniformly for the whole batch,
and that part's transforms are applied, each image with its own random parameters:

- color: brightness ``x + (u - 0.5) * brightness``, then saturation
  ``(x - m_c) * (u * saturation) + m_c`` (``m_c``: the pixel's mean over channels), then
  contrast ``(x - m) * (u + contrast) + m`` (``m``: the image's mean), a fresh ``u ~ U[0, 1)``
  per image for each;
- crop: shift by integers in ``[-s, s]`` pixels per axis, ``s = int(size * ratio_crop_pad +
  0.5)``, filling with zeros;
- cutout: zero a ``int(H * ratio_cutout + 0.5) x int(W * ratio_cutout + 0.5)`` rectangle at a
  random centre (clipped at the border);
- flip: mirror left-right with probability ``prob_flip``;
- scale: resample with ``affine_grid``/``grid_sample`` (bilinear, zeros outside, corners aligned)
  through ``diag(sx, sy)``, ``sx, sy ~ U[1 / ratio_scale, ratio_scale)``;
- rotate: likewise through a rotation by ``U[-ratio_rotate, ratio_rotate)`` degrees.

Deliberate differences from the reference:

- every random number (the strategy choice included) comes from an explicit CPU
  ``torch.Generator`` instead of the global RNG and the reference's ``seed``/``latestseed``
  reseeding; draws are made on the CPU and moved to the images' device. With the same stream
  the parameters are the reference's (same draws, same order);
- the siamese batch mode (``seed != -1``: one parameter set shared by all images, so that a real
  and a synthetic batch get the same transform; DSA's and DM's matching, DC's ``utils.py`` at
  VICO-UoE/DatasetCondensation@53f63a6) is ``DSADraws.siamese(seed)``: as the reference, every
  draw reseeds from the next integer after ``seed`` and the first image's value is shared;
- cutout and crop build masks/indices arithmetically instead of by scatter into ``meshgrid``
  indices; the result is the same;
- ``ratio_noise`` (unused by the reference) is left out; unknown strategy names raise
  ``ValueError`` (the reference raises ``KeyError``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from bench.core.errors import ConfigError


@dataclass(frozen=True)
class DSAParams:
    """Strengths of the DSA transforms; the defaults are ``ParamDiffAug``'s."""

    aug_mode: Literal["S", "M"] = "S"
    """``"S"``: one strategy part drawn per call (MTT); ``"M"``: every part, in order"""
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    """scale factors per axis in ``[1 / ratio_scale, ratio_scale)``"""
    ratio_rotate: float = 15.0
    """maximum rotation in degrees"""
    ratio_crop_pad: float = 0.125
    """maximum shift as a fraction of the side"""
    ratio_cutout: float = 0.5
    """side of the cut-out rectangle as a fraction of the image side"""
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    align_corners: bool = True
    """scale and rotate's ``affine_grid``/``grid_sample``: MTT's copy of ``DiffAugment`` aligns
    the corners; DC's (VICO-UoE/DatasetCondensation@53f63a6) leaves PyTorch's default, False.
    Both map pixel p to c + A (p - c) about the centre c, so only float rounding differs (6e-6
    of the largest pixel on CIFAR-10, ``scripts/reference_check/dsa.py``): set to match a
    reference bit for bit"""

    def __post_init__(self) -> None:
        if self.aug_mode not in ("S", "M"):
            raise ValueError(f"DSAParams.aug_mode must be 'S' or 'M', got {self.aug_mode!r}")


class DSADraws:
    """Where the transforms' random numbers come from, on the CPU.

    Per-call mode (``DSADraws(generator)``): every draw continues ``generator``, one value per
    image. Siamese mode (``DSADraws.siamese(seed)``, the reference's ``seed != -1``): before
    each draw the generator is reseeded with the next integer from ``seed`` on (the reference's
    ``set_seed_DiffAug``), and the first image's values are shared by the whole batch, so two
    batches augmented from the same seed get the same transform whatever their sizes."""

    def __init__(self, generator: torch.Generator, seed: int | None = None) -> None:
        self.generator = generator
        self.seed = seed

    @classmethod
    def siamese(cls, seed: int) -> DSADraws:
        """The siamese draws of the reference's ``DiffAugment(.., seed=seed)``."""
        return cls(torch.Generator(), seed)

    def _reseed(self) -> None:
        if self.seed is not None:
            self.generator.manual_seed(self.seed)
            self.seed += 1

    def _shared(self, values: torch.Tensor) -> torch.Tensor:
        if self.seed is not None:
            values[:] = values[0].clone()
        return values

    def rand(self, x: torch.Tensor, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """``U[0, 1)`` of shape ``[B, *shape]`` (``B``: ``x``'s batch), float32 on the CPU."""
        self._reseed()
        return self._shared(torch.rand((x.shape[0], *shape), generator=self.generator))

    def randint(self, x: torch.Tensor, low: int, high: int) -> torch.Tensor:
        """``[B]`` integers in ``[low, high)``, moved to ``x``'s device."""
        self._reseed()
        values = torch.randint(low, high, (x.shape[0],), generator=self.generator)
        return self._shared(values).to(x.device)

    def choice(self, n: int) -> int:
        """One index in ``[0, n)`` (the strategy part of mode ``"S"``)."""
        self._reseed()
        return int(torch.randint(n, (1,), generator=self.generator))


def _uniform(x: torch.Tensor, draws: DSADraws, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """``U[0, 1)`` of shape ``[B, *shape]``, moved to ``x``'s device/dtype."""
    return draws.rand(x, shape).to(x.device, x.dtype)


def _affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, align_corners=align_corners)


def _scale(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    low = 1.0 / p.ratio_scale
    sx = draws.rand(x) * (p.ratio_scale - low) + low
    sy = draws.rand(x) * (p.ratio_scale - low) + low
    zero = torch.zeros_like(sx)
    theta = torch.stack([sx, zero, zero, zero, sy, zero], dim=1).view(-1, 2, 3)
    return _affine(x, theta, p.align_corners)


def _rotate(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    angle = (draws.rand(x) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3)
    return _affine(x, theta, p.align_corners)


def _flip(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    return torch.where(_uniform(x, draws, (1, 1, 1)) < p.prob_flip, x.flip(3), x)


def _brightness(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    return x + (_uniform(x, draws, (1, 1, 1)) - 0.5) * p.brightness


def _saturation(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, draws, (1, 1, 1)) * p.saturation) + mean


def _contrast(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, draws, (1, 1, 1)) + p.contrast) + mean


def _crop(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    b, _, h, w = x.shape
    shift_h, shift_w = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
    dh = draws.randint(x, -shift_h, shift_h + 1)
    dw = draws.randint(x, -shift_w, shift_w + 1)
    # Output pixel (i, j) reads input (i + dh, j + dw); indices past the border land on the
    # one-pixel zero padding.
    rows = (torch.arange(h, device=x.device) + dh[:, None] + 1).clamp(0, h + 1)  # [B, H]
    cols = (torch.arange(w, device=x.device) + dw[:, None] + 1).clamp(0, w + 1)  # [B, W]
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # [B, H + 2, W + 2, C]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, draws: DSADraws, p: DSAParams) -> torch.Tensor:
    _, _, h, w = x.shape
    size_h, size_w = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
    top = draws.randint(x, 0, h + (1 - size_h % 2)) - size_h // 2  # [B]
    left = draws.randint(x, 0, w + (1 - size_w % 2)) - size_w // 2
    i = torch.arange(h, device=x.device)
    j = torch.arange(w, device=x.device)
    in_rows = (i >= top[:, None]) & (i < top[:, None] + size_h)  # [B, H]
    in_cols = (j >= left[:, None]) & (j < left[:, None] + size_w)  # [B, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [B, H, W]
    return x * keep.unsqueeze(1).to(x.dtype)


_Op = Callable[[torch.Tensor, DSADraws, DSAParams], torch.Tensor]
OPS: dict[str, tuple[_Op, ...]] = {
    "color": (_brightness, _saturation, _contrast),
    "crop": (_crop,),
    "cutout": (_cutout,),
    "flip": (_flip,),
    "scale": (_scale,),
    "rotate": (_rotate,),
}
"""the strategy parts and the transforms each applies, in order (the reference's
``AUGMENT_FNS``)"""


def check_strategy(strategy: str, key: str) -> None:
    """Refuse a DSA strategy naming a part not in ``OPS`` (``"none"``/``""``: no augmentation).

    Raises:
        ConfigError: ``key`` (the config field, e.g. ``eval.dsa_strategy``) and the known parts.
    """
    unknown = [part for part in strategy.split("_") if part not in OPS]
    if strategy not in ("", "none", "None") and unknown:
        raise ConfigError(f"{key}: unknown part(s) {unknown}; known: {', '.join(OPS)}")


def dsa_augment(
    images: torch.Tensor,
    generator: torch.Generator | DSADraws,
    strategy: str = "color_crop_cutout_flip_scale_rotate",
    params: DSAParams = DSAParams(),  # noqa: B008 (frozen, immutable)
) -> torch.Tensor:
    """Apply DSA to a batch: one part of ``strategy`` drawn uniformly for the whole batch
    (``params.aug_mode == "S"``; ``"M"``: every part in order), per-image random parameters
    (or, from ``DSADraws.siamese(seed)``, one parameter set for the batch).

    Args:
        images: float ``[B, C, H, W]`` on any device; not modified, and the result is
            differentiable with respect to it.
        generator: CPU generator that supplies every random draw (the strategy choice too), or
            the ``DSADraws`` to take them from.
        strategy: parts of ``OPS`` joined by ``"_"``; ``"none"`` or ``""``: no augmentation.
        params: strengths of the transforms.

    Returns:
        ``[B, C, H, W]`` of ``images``' dtype on ``images.device`` (``images`` itself for
        ``"none"``/``""``).

    Raises:
        ValueError: ``strategy`` names a part not in ``OPS``.
    """
    if strategy in ("", "none", "None"):
        return images
    parts = strategy.split("_")
    unknown = [part for part in parts if part not in OPS]
    if unknown:
        raise ValueError(
            f"unknown DSA strategy part(s) {unknown} in {strategy!r}; known: {', '.join(OPS)}"
        )
    draws = generator if isinstance(generator, DSADraws) else DSADraws(generator)
    if params.aug_mode == "S":
        parts = [parts[draws.choice(len(parts))]]
    x = images
    for part in parts:
        for op in OPS[part]:
            x = op(x, draws, params)
    return x.contiguous()
