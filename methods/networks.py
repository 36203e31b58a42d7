"""Networks shared by the distillation methods and the shared evaluation.

ConvNet-3 follows the ConvNet of the DC reference code (VICO-UoE/DatasetCondensation at
commit 53f63a6, ``networks.py``/``get_default_convnet_setting``): ``depth`` blocks of
3x3 convolution (width 128) -> instance norm -> ReLU -> 2x2 average pooling, then one linear
layer. Instance norm is ``GroupNorm(width, width)`` with affine parameters, as the reference
implements it. For 28x28 single-channel inputs (MNIST) the first convolution pads by 3, so the
feature maps are 32x32 as for 32x32 datasets (reference behaviour).

Initialisation is PyTorch's default; the caller controls it by seeding (see
``build_network``), so no network ever takes its seed from the clock.
"""

from __future__ import annotations

import torch
from torch import nn

NETWORKS = ("ConvNet",)


class ConvNet(nn.Module):
    """ConvNet-D (default D=3) of DC.

    Args:
        channels: input channels C.
        num_classes: number of output logits K.
        image_size: (H, W) of the inputs.
        width: convolution channels (128 in the paper).
        depth: number of conv blocks (3 in the paper).

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 128,
        depth: int = 3,
    ) -> None:
        super().__init__()
        height, width_px = (32, 32) if tuple(image_size) == (28, 28) else image_size
        layers: list[nn.Module] = []
        in_channels = channels
        for d in range(depth):
            padding = 3 if channels == 1 and d == 0 else 1
            layers += [
                nn.Conv2d(in_channels, width, kernel_size=3, padding=padding),
                nn.GroupNorm(width, width, affine=True),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(kernel_size=2, stride=2),
            ]
            in_channels = width
            height, width_px = height // 2, width_px // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * height * width_px, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features ``[B, width * h * w]`` before the linear head."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def build_network(
    name: str,
    channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    seed: int,
) -> nn.Module:
    """Build a freshly initialised network on the CPU with parameters drawn from ``seed``.

    The global RNG is forked, so building a network neither reads nor changes the caller's
    random state; the same seed gives the same parameters on every device (move it after).

    Raises:
        ValueError: unknown ``name`` (known names are in ``NETWORKS``).
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvNet(channels, num_classes, image_size)
