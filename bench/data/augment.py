"""DC's evaluation-time augmentation ("crop_scale_rotate"), computed as the reference computes it.

Follows ``augment`` in the DC reference code (VICO-UoE/DatasetCondensation@53f63a6,
``utils.py`` lines 365-424), which the reference applies when training evaluation networks on
MNIST (``get_daparam``); kghandour/dd3d@d3dc89f (``mnist_distill.py`` ``augment``) is the same
function. For every image one transform is drawn uniformly from the strategy list:

- crop (``dc_crop``): pad by ``crop`` pixels with each channel's batch mean and take a window at
  an offset drawn from ``[0, 2 crop)`` per axis;
- scale (``dc_scale``): resize to ``int(u * H) x int(v * H)`` (``u, v`` uniform in
  ``[1 - scale, 1 + scale]``, both from the height, as the reference), nearest neighbour
  (``F.interpolate``'s default), place it at whole-pixel offsets in a zero square and take the
  centre;
- rotate (``dc_rotate``): ``scipy.ndimage.rotate`` by an integer angle in ``[-rotate, rotate)``
  degrees (cubic spline, the image enlarged to hold the rotation, filled with the mean of the
  channel means), then the centre ``H x W``.

Given the same parameters, each transform gives the reference's pixels bit for bit
(``scripts/reference_check/augment.py`` drives the reference's own ``augment`` and compares).
The reference draws the parameters from numpy's global RNG; here every draw comes from an explicit
``torch.Generator`` with the same distributions, so streams differ but the augmentation does not.
Up to recipe version 1 the suite used a batched ``grid_sample`` (bicubic rotation about the centre,
an affine scale about the centre): not the same pixels, superseded.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F

STRATEGIES = ("crop", "scale", "rotate")


def dc_crop(image: torch.Tensor, top: int, left: int, crop: int, means: list[float]):
    """The window at ``(top, left)``, each in ``[0, 2 crop)``, of ``image [C, H, W]`` padded by
    ``crop`` pixels with ``means[c]`` (reference ``cropfun``): a shift by ``crop - top`` rows and
    ``crop - left`` columns. Returns ``[C, H, W]``."""
    c, h, w = image.shape
    canvas = torch.empty(c, h + 2 * crop, w + 2 * crop, dtype=image.dtype, device=image.device)
    for channel in range(c):
        canvas[channel] = means[channel]
    canvas[:, crop : crop + h, crop : crop + w] = image
    return canvas[:, top : top + h, left : left + w]


def dc_scale(image: torch.Tensor, new_h: int, new_w: int) -> torch.Tensor:
    """``image [C, H, W]`` resized to ``new_h x new_w`` (nearest), placed at
    ``int((m - new_h) / 2), int((m - new_w) / 2)`` in a zero ``m x m`` square
    (``m = max(new_h, new_w, H, W)``) and cropped at ``int((m - H) / 2), int((m - W) / 2)``
    (reference ``scalefun``). Returns ``[C, H, W]``."""
    c, h, w = image.shape
    resized = F.interpolate(image[None], [new_h, new_w])[0]
    side = max(new_h, new_w, h, w)
    canvas = torch.zeros(c, side, side, dtype=image.dtype, device=image.device)
    top, left = (side - new_h) // 2, (side - new_w) // 2
    canvas[:, top : top + new_h, left : left + new_w] = resized
    top, left = (side - h) // 2, (side - w) // 2
    return canvas[:, top : top + h, left : left + w]


def dc_rotate(image: torch.Tensor, angle: int, fill: float) -> torch.Tensor:
    """``image [C, H, W]`` rotated by ``angle`` degrees in the image plane with
    ``scipy.ndimage.rotate`` (order 3, ``reshape=True``, constant ``fill`` outside), then the
    centre ``H x W`` at ``int((H' - H) / 2), int((W' - W) / 2)`` (reference ``rotatefun``).
    Computed on the CPU; returns ``[C, H, W]`` float32 on ``image.device``."""
    c, h, w = image.shape
    rotated = scipy.ndimage.rotate(
        image.detach().cpu().numpy(), angle=angle, axes=(-2, -1), cval=fill
    )
    top, left = (rotated.shape[-2] - h) // 2, (rotated.shape[-1] - w) // 2
    window = np.ascontiguousarray(rotated[:, top : top + h, left : left + w])
    return torch.from_numpy(window).to(device=image.device, dtype=torch.float32)


class DCDraws(NamedTuple):
    """The random parameters of ``dc_augment`` for ``B`` images, as plain lists."""

    choice: list[int]
    """index into the strategy list per image"""
    offsets: list[list[int]]
    """crop window ``[top, left]`` per image, each in ``[0, 2 crop)``"""
    sizes: list[list[int]]
    """scaled ``[height, width]`` per image: ``int(u * H)``, ``u`` uniform in
    ``[1 - scale, 1 + scale]``"""
    angles: list[int]
    """rotation in whole degrees per image, in ``[-rotate, rotate)``"""


def dc_draws(
    count: int,
    height: int,
    generator: torch.Generator,
    crop: int,
    scale: float,
    rotate: int,
    strategies: int,
) -> DCDraws:
    """Draw every parameter for ``count`` images from ``generator`` (every parameter for every
    image, so the stream does not depend on the choices), with the reference's distributions:
    ``np.random.permutation(augs)[0]``, ``np.random.permutation(crop * 2)[0]``,
    ``int(np.random.uniform(1 - scale, 1 + scale) * H)``, ``np.random.randint(-rotate, rotate)``."""
    choice = torch.randint(strategies, (count,), generator=generator).tolist()
    offsets = (
        torch.randint(2 * crop, (count, 2), generator=generator)
        if crop > 0
        else torch.zeros(count, 2, dtype=torch.long)
    ).tolist()
    factors = 1 - scale + 2 * scale * torch.rand(count, 2, generator=generator, dtype=torch.float64)
    sizes = (factors * height).long().tolist()  # int() of a positive float, as the reference
    angles = torch.randint(-rotate, max(rotate, 1), (count,), generator=generator).tolist()
    return DCDraws(choice, offsets, sizes, angles)


def apply_dc(
    images: torch.Tensor, draws: DCDraws, crop: int, strategies: tuple[str, ...] = STRATEGIES
) -> torch.Tensor:
    """``images [B, C, H, W]`` (not modified), image ``i`` transformed by
    ``strategies[draws.choice[i]]`` with its drawn parameters; the fill values are the batch's
    float32 channel means and, for rotation, their float64 mean, as the reference computes them.
    Returns float32 ``[B, C, H, W]`` on ``images.device``."""
    means = [float(images[:, channel].mean()) for channel in range(images.shape[1])]
    out = images.clone()
    for i in range(len(images)):
        name = strategies[draws.choice[i]]
        if name == "crop":
            out[i] = dc_crop(images[i], *draws.offsets[i], crop, means)
        elif name == "scale":
            out[i] = dc_scale(images[i], *draws.sizes[i])
        else:
            out[i] = dc_rotate(images[i], draws.angles[i], float(np.mean(means)))
    return out


def dc_augment(
    images: torch.Tensor,
    generator: torch.Generator,
    crop: int = 4,
    scale: float = 0.2,
    rotate: int = 45,
    strategies: tuple[str, ...] = STRATEGIES,
) -> torch.Tensor:
    """Apply one randomly chosen DC transform to each image (module docstring): ``dc_draws``
    then ``apply_dc``.

    Args:
        images: float32 ``[B, C, H, W]`` (normalised images; not modified).
        generator: CPU generator that supplies every random draw.
        crop: maximum shift in pixels.
        scale: maximum relative change of height/width.
        rotate: maximum rotation in degrees.
        strategies: the transforms to choose from (subset of ``STRATEGIES``).

    Returns:
        float32 ``[B, C, H, W]`` on ``images.device``.

    Raises:
        ValueError: a strategy not in ``STRATEGIES``.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown DC augmentation {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
    b, _, h, _ = images.shape
    draws = dc_draws(b, h, generator, crop, scale, rotate, len(strategies))
    return apply_dc(images, draws, crop, strategies)
