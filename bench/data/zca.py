"""ZCA whitening of a real dataset, as MTT preprocesses CIFAR-10 (``preprocessing = "zca"``,
``bench/data/preprocess.py``).

Follows ``get_dataset`` of the MTT reference code (GeorgeCazenavette/mtt-distillation@50dccea,
``utils.py``): with ZCA the images are *not* mean/std-normalised first; kornia's
``ZCAWhitening(eps=0.1)`` is fitted on the training split's pixels in [0, 1] and the same
transform is applied to the training and the test split. (The EuroSAT work's ``--zca`` never
whitens: it only drops the normalisation, ``preprocessing = "none"``.) Everything trained or
evaluated on such data (expert trajectories, distillation, evaluation) must see this one
transform, so a ``RealSet`` carries a description of its preprocessing
(``RealSet.preprocessing``) that expert manifests record and distillation checks.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from bench.data.real import RealSet, denormalise

EPS = 0.1
"""kornia ``ZCAWhitening`` regulariser of the reference code"""


def zca_description(train: RealSet, eps: float = EPS) -> dict:
    """What ``zca_whiten`` does to ``train``'s dataset, as recorded in expert manifests: two
    runs whose descriptions are equal used the same preprocessing."""
    return {
        "kind": "zca",
        "library": "kornia.enhance.ZCAWhitening",
        "eps": eps,
        "fitted_on": f"{train.card.name} train split ({len(train.labels)} images)",
        "input": "pixels in [0, 1] (no mean/std normalisation)",
    }


def zca_whiten(
    train: RealSet, test: RealSet, eps: float = EPS, device: torch.device | str = "cpu"
) -> tuple[RealSet, RealSet]:
    """Fit ZCA whitening on ``train``'s pixels and apply it to both splits.

    Args:
        train, test: normalised real splits (``load_real``), images ``[N, C, H, W]``.
        eps: regulariser added to the covariance's eigenvalues (kornia's ``eps``).
        device: where the ``[C*H*W, C*H*W]`` covariance is computed (CIFAR-10: 3072^2, a few
            seconds on a CPU; EuroSAT: 12288^2, minutes on a CPU).

    Returns:
        (train, test) with whitened images ``[N, C, H, W]`` float32 on the CPU, their
        ``preprocessing`` set to ``zca_description`` and ``to_pixels`` turning images back into
        pictures (un-whitened, clipped to mean +- 2.5 std and stretched to [0, 1] per image, as
        the reference's pictures).
    """
    from kornia.enhance import ZCAWhitening

    zca = ZCAWhitening(eps=eps, compute_inv=True)
    pixels = denormalise(train.images, train.card)  # undo the card's mean/std: ZCA sees [0, 1]
    zca.fit(pixels.to(device))
    zca = zca.cpu()

    def whiten(split: RealSet) -> torch.Tensor:
        return torch.cat([zca(chunk.to(device)).cpu() for chunk in _pixel_chunks(split)])

    description = zca_description(train, eps)
    return tuple(
        dataclasses.replace(
            split,
            images=whiten(split),
            preprocessing=description,
            to_pixels=functools.partial(_unwhitened_pixels, zca),
        )
        for split in (train, test)
    )


def _pixel_chunks(split: RealSet, size: int = 10000):
    """The split's images as [0, 1] pixels, in chunks (bounded extra memory)."""
    for start in range(0, len(split.labels), size):
        yield denormalise(split.images[start : start + size], split.card)


def _unwhitened_pixels(zca, images: torch.Tensor) -> torch.Tensor:
    """``images`` (ZCA-whitened by ``zca``) as pictures, as the reference shows them: un-whitened,
    clipped to mean +- 2.5 std, each image stretched to [0, 1]. Module level (used through
    ``functools.partial``) so that a whitened ``RealSet`` can be pickled (``--parallel-sets``)."""
    with torch.no_grad():
        pixels = zca.inverse_transform(images.detach().cpu().float())
        mean, std = pixels.mean(), pixels.std()
        pixels = pixels.clamp(mean - 2.5 * std, mean + 2.5 * std)
        low = pixels.amin(dim=(1, 2, 3), keepdim=True)
        high = pixels.amax(dim=(1, 2, 3), keepdim=True)
        return (pixels - low) / (high - low).clamp(min=1e-8)
