"""Networks shared by the distillation methods and the shared evaluation.

All of them are those of the DC reference code (VICO-UoE/DatasetCondensation at commit 53f63a6,
``networks.py``, built by ``utils.get_network``); DC's Table 2 evaluates synthetic sets across
them. Each maps ``[B, C, H, W]`` float32 images to ``[B, K]`` logits, and ``embed`` gives the
``[B, D]`` features that its final linear layer, ``classifier``, maps to the logits.

- ``ConvNet``: ConvNet-3, three blocks of 3x3 convolution (width 128) -> instance norm -> ReLU
  -> 2x2 average pooling, then one linear layer (the networks distillation trains on).
- ``MLP``: two hidden layers of 128 ReLU units on the flattened image.
- ``LeNet``: LeNet-5, two 5x5 convolution + ReLU + 2x2 max-pooling stages, then 120 and 84 ReLU
  units.
- ``AlexNet``: five convolutions (128-192-256-192-192) with ReLU and three 2x2 max-poolings, no
  normalisation, then one linear layer.
- ``VGG11``: VGG-11 (configuration A) with instance norm after each convolution, five 2x2
  max-poolings, then one linear layer.
- ``ResNet18``: CIFAR-style ResNet-18 (3x3 stem, no stem pooling, [2, 2, 2, 2] basic blocks of
  64-128-256-512 channels) with instance norm, 4x4 average pooling, then one linear layer.

Instance norm is ``GroupNorm(C, C)`` with affine parameters, as the reference implements it (it is
the reference default for ConvNet, VGG11 and ResNet18). For 28x28 single-channel inputs (MNIST)
the first convolution of ConvNet, LeNet, AlexNet and VGG11 pads more, so that their feature maps
are those of 32x32 inputs; the MLP takes the 784 pixels and ResNet18 the 28x28 maps as they are
(reference behaviour). Where the reference hard-codes the size of a linear layer for 28x28 and
32x32 inputs, it is computed here from ``image_size`` (the same size for those inputs).

Initialisation is PyTorch's default, with the modules created in the reference's order; the
caller controls it by seeding (see ``build_network``), so no network ever takes its seed from
the clock.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _instance_norm(channels: int) -> nn.GroupNorm:
    """Instance norm with per-channel affine parameters, as ``GroupNorm(C, C)`` (reference)."""
    return nn.GroupNorm(channels, channels, affine=True)


def _out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling with the given geometry (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def _check_size(name: str, image_size: tuple[int, int], height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"{name}: inputs of size {tuple(image_size)} are too small")


class ConvNet(nn.Module):
    """ConvNet-D (default D=3) of DC (reference: VICO-UoE/DatasetCondensation@53f63a6
    ``networks.py`` ``ConvNet`` with ``get_default_convnet_setting``).

    Args:
        channels: input channels C.
        num_classes: number of output logits K.
        image_size: (H, W) of the inputs.
        width: convolution channels (128 in the paper).
        depth: number of conv blocks (3 in the paper).

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``; ``embed`` gives
    ``[B, width * H' * W']`` with ``H' = H / 2**depth`` (H = 32 for 28x28 inputs).
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
                _instance_norm(width),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(kernel_size=2, stride=2),
            ]
            in_channels = width
            height, width_px = height // 2, width_px // 2
        _check_size("ConvNet", image_size, height, width_px)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * height * width_px, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features ``[B, width * h * w]`` before the linear head."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(nn.Module):
    """Three-layer perceptron of DC (reference: VICO-UoE/DatasetCondensation@53f63a6
    ``networks.py`` ``MLP``): flatten -> linear(width) -> ReLU -> linear(width) -> ReLU -> linear.

    Args:
        channels: input channels C.
        num_classes: number of output logits K.
        image_size: (H, W) of the inputs (the reference fixes C*H*W to 784 or 3072).
        width: hidden units (128 in the reference).

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``; ``embed`` gives ``[B, width]``.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 128,
    ) -> None:
        super().__init__()
        height, width_px = image_size
        self.features = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(channels * height * width_px, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Second hidden layer's activations ``[B, width]``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class LeNet(nn.Module):
    """LeNet-5 of DC (reference: VICO-UoE/DatasetCondensation@53f63a6 ``networks.py``
    ``LeNet``): conv5x5(6) -> ReLU -> maxpool2 -> conv5x5(16) -> ReLU -> maxpool2 -> linear(120)
    -> ReLU -> linear(84) -> ReLU -> linear(K). Single-channel inputs are padded by 2, so 28x28
    images give the 5x5 maps of unpadded 32x32 ones.

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``; ``embed`` gives ``[B, 84]``.
    """

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        padding = 2 if channels == 1 else 0

        def side(size: int) -> int:  # (padded) conv5x5 -> maxpool2 -> conv5x5 -> maxpool2
            size = _out_size(_out_size(size, 5, padding=padding), 2, 2)
            return _out_size(_out_size(size, 5), 2, 2)

        height, width = side(image_size[0]), side(image_size[1])
        _check_size("LeNet", image_size, height, width)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(1),
        )
        self.hidden = nn.Sequential(
            nn.Linear(16 * height * width, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the 84-unit layer, ``[B, 84]``."""
        return self.hidden(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class AlexNet(nn.Module):
    """AlexNet of DC, without normalisation (reference: VICO-UoE/DatasetCondensation@53f63a6
    ``networks.py`` ``AlexNet``): conv5x5(128) -> maxpool2 -> conv5x5(192) -> maxpool2 ->
    conv3x3(256) -> conv3x3(192) -> conv3x3(192) -> maxpool2, each convolution followed by ReLU,
    then one linear layer. The first convolution pads single-channel inputs by 4 (else 2), so
    28x28 images give the 32x32 maps of 32x32 ones.

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``; ``embed`` gives
    ``[B, 192 * h * w]`` (``[B, 3072]`` for 28x28 and 32x32 inputs).
    """

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        padding = 4 if channels == 1 else 2
        height, width = (_out_size(s, 5, padding=padding) // 8 for s in image_size)
        _check_size("AlexNet", image_size, height, width)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, kernel_size=5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(128, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(1),
        )
        self.classifier = nn.Linear(192 * height * width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened convolutional features ``[B, 192 * h * w]``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


# VGG-11 (configuration "A"): output channels of each 3x3 convolution, "M" a 2x2 max-pooling.
_VGG11_CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 of DC with instance norm, the reference default (reference:
    VICO-UoE/DatasetCondensation@53f63a6 ``networks.py`` ``VGG``/``VGG11``): eight blocks of
    conv3x3 -> instance norm -> ReLU with five 2x2 max-poolings, then one linear layer. The first
    convolution pads single-channel inputs by 3 (else 1), so 28x28 images give 32x32 maps.

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``; ``embed`` gives
    ``[B, 512 * h * w]`` (``[B, 512]`` for 28x28 and 32x32 inputs).
    """

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        padding = 3 if channels == 1 else 1
        height, width = (_out_size(s, 3, padding=padding) for s in image_size)
        layers: list[nn.Module] = []
        in_channels = channels
        for item in _VGG11_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                height, width = height // 2, width // 2
            else:
                out_channels = int(item)
                layers += [
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=padding),
                    _instance_norm(out_channels),
                    nn.ReLU(inplace=True),
                ]
                in_channels, padding = out_channels, 1
        _check_size("VGG11", image_size, height, width)
        layers.append(nn.Flatten(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels * height * width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened convolutional features ``[B, 512 * h * w]``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class _BasicBlock(nn.Module):
    """ResNet basic block with instance norm: two 3x3 convolutions (the first with ``stride``)
    plus a shortcut, a 1x1 convolution + norm where the shape changes.

    ``[B, C_in, H, W] -> [B, C_out, H / stride, W / stride]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.norm1 = _instance_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm2 = _instance_norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                _instance_norm(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 of DC with instance norm, the reference default (reference:
    VICO-UoE/DatasetCondensation@53f63a6 ``networks.py`` ``ResNet``/``ResNet18``): a 3x3 stem
    (64 channels) -> instance norm -> ReLU, four stages of two basic blocks (64, 128, 256, 512
    channels; stride 2 from the second stage), 4x4 average pooling, then one linear layer. Inputs
    of any channel count are taken as they are (28x28 images end in 4x4 maps, like 32x32 ones).

    Input ``[B, C, H, W]`` float32, output logits ``[B, K]``; ``embed`` gives
    ``[B, 512 * h * w]`` (``[B, 512]`` for 28x28 and 32x32 inputs).
    """

    stages: tuple[int, ...] = (64, 128, 256, 512)
    blocks_per_stage: int = 2

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        height, width = image_size
        self.stem = nn.Sequential(
            nn.Conv2d(channels, self.stages[0], kernel_size=3, padding=1, bias=False),
            _instance_norm(self.stages[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_channels = self.stages[0]
        for i, out_channels in enumerate(self.stages):
            for j in range(self.blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(_BasicBlock(in_channels, out_channels, stride))
                in_channels = out_channels
                height = _out_size(height, 3, stride, padding=1)
                width = _out_size(width, 3, stride, padding=1)
        self.blocks = nn.Sequential(*blocks)
        height, width = height // 4, width // 4  # 4x4 average pooling
        _check_size("ResNet18", image_size, height, width)
        self.classifier = nn.Linear(in_channels * height * width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Average-pooled features of the last stage, flattened: ``[B, 512 * h * w]``."""
        out = self.blocks(self.stem(x))
        return F.avg_pool2d(out, kernel_size=4).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


NetworkBuilder = Callable[[int, int, tuple[int, int]], nn.Module]
"""``(channels, num_classes, image_size) -> network``."""

_BUILDERS: dict[str, NetworkBuilder] = {
    "ConvNet": ConvNet,
    "MLP": MLP,
    "LeNet": LeNet,
    "AlexNet": AlexNet,
    "VGG11": VGG11,
    "ResNet18": ResNet18,
}

NETWORKS: tuple[str, ...] = tuple(_BUILDERS)
"""Names accepted by ``build_network``, ConvNet first (names of the reference ``get_network``)."""


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
        ValueError: unknown ``name`` (known names are in ``NETWORKS``), or inputs too small.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        height, width = image_size
        return builder(channels, num_classes, (height, width))
