"""DC's evaluation-time augmentation ("crop_scale_rotate"), batched.

Follows ``augment`` in the DC reference code (VICO-UoE/DatasetCondensation@53f63a6,
``utils.py``), which the reference applies when training evaluation networks on MNIST
(``get_daparam``). For every image one transform is drawn uniformly from the strategy list:

- crop: shift by an integer offset in ``[-crop + 1, crop]`` pixels per axis, filling with the
  batch's per-channel mean (the reference pads by ``crop`` and takes a random window);
- scale: resize height and width independently by factors in ``[1 - scale, 1 + scale]``
  (nearest neighbour) about the centre, filling with zeros;
- rotate: rotate by an integer angle in ``[-rotate, rotate)`` degrees about the centre, filling
  with the mean of the channel means (the reference uses scipy's cubic spline; this uses
  bicubic ``grid_sample``, the same transform up to interpolation).

The reference loops over images in Python with numpy's global RNG; this version draws every
random number from an explicit ``torch.Generator`` and transforms the batch at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

STRATEGIES = ("crop", "scale", "rotate")


def _affine(images: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor, mode: str):
    """Sample ``images`` through per-image affine maps ``theta [B, 2, 3]`` (output -> input,
    normalised coordinates); points outside the image take ``fill`` (broadcast to ``[B,C,1,1]``)."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    shifted = F.grid_sample(
        images - fill, grid, mode=mode, padding_mode="zeros", align_corners=False
    )
    return shifted + fill


def dc_augment(
    images: torch.Tensor,
    generator: torch.Generator,
    crop: int = 4,
    scale: float = 0.2,
    rotate: int = 45,
    strategies: tuple[str, ...] = STRATEGIES,
) -> torch.Tensor:
    """Apply one randomly chosen DC transform to each image.

    Args:
        images: float32 ``[B, C, H, W]`` (normalised images; not modified).
        generator: CPU generator that supplies every random draw.
        crop: maximum shift in pixels.
        scale: maximum relative change of height/width.
        rotate: maximum rotation in degrees.
        strategies: the transforms to choose from (subset of ``STRATEGIES``).

    Returns:
        float32 ``[B, C, H, W]`` on ``images.device``.
    """
    b, c, h, w = images.shape
    device = images.device
    choice = torch.randint(len(strategies), (b,), generator=generator)
    # Draw every parameter for every image so the stream does not depend on the choices.
    shift = (
        torch.randint(2 * crop, (b, 2), generator=generator) - crop + 1
        if crop > 0
        else (torch.zeros(b, 2, dtype=torch.long))
    )
    factors = 1 - scale + 2 * scale * torch.rand(b, 2, generator=generator)
    angles = torch.randint(-rotate, max(rotate, 1), (b,), generator=generator).float()

    channel_mean = images.mean(dim=(0, 2, 3)).view(1, c, 1, 1)
    out = images.clone()
    for index, name in enumerate(strategies):
        sel = (choice == index).nonzero().flatten()
        if sel.numel() == 0:
            continue
        n = sel.numel()
        theta = torch.zeros(n, 2, 3)
        if name == "crop":
            # output pixel (y, x) reads input (y - dy, x - dx): a shift by whole pixels.
            theta[:, 0, 0] = theta[:, 1, 1] = 1.0
            theta[:, 0, 2] = -2.0 * shift[sel, 1].float() / w
            theta[:, 1, 2] = -2.0 * shift[sel, 0].float() / h
            fill, mode = channel_mean, "nearest"
        elif name == "scale":
            # the reference truncates the new size to whole pixels
            new_h = (factors[sel, 0] * h).floor().clamp(min=1)
            new_w = (factors[sel, 1] * h).floor().clamp(min=1)
            theta[:, 0, 0] = w / new_w
            theta[:, 1, 1] = h / new_h
            fill, mode = torch.zeros(1, c, 1, 1, device=device), "nearest"
        elif name == "rotate":
            radians = angles[sel] * math.pi / 180.0
            theta[:, 0, 0] = torch.cos(radians)
            theta[:, 0, 1] = -torch.sin(radians)
            theta[:, 1, 0] = torch.sin(radians)
            theta[:, 1, 1] = torch.cos(radians)
            fill, mode = channel_mean.mean().view(1, 1, 1, 1), "bicubic"
        else:
            raise ValueError(f"unknown DC augmentation {name!r}; known: {', '.join(STRATEGIES)}")
        sel_dev = sel.to(device)
        out[sel_dev] = _affine(images[sel_dev], theta.to(device), fill, mode)
    return out
