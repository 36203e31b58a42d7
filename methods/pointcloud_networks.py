"""Distillation networks for point-cloud MNIST (report "Dataset Distillation for 3D Point
Clouds", §3.2.2): blocks of 3-D convolution, ReLU and pooling, then flatten and a linear layer,
Kaiming-initialised as the reference code does it: PyTorch layers keep PyTorch's default
(``kaiming_uniform_`` with ``a=sqrt(5)``), MinkowskiEngine kernels get ``kaiming_normal_``
(fan out, ReLU). The scale matters: the points move by lr x gradient, and a larger
initialisation moves them by whole pixels per step.

Two variants: MinkowskiEngine sparse convolutions on the points (``SparsePointCloudNet``,
needs MinkowskiEngine: ``scripts/install_minkowski.sh``) and pure PyTorch on the batch made
dense (``DensePointCloudNet``, ``methods.pointclouds.to_dense``).

Layer widths and kernel shapes follow the reference code's ``MEPytorch``/``MEConvExp``
(kghandour/dd3d, ``models/MEConv.py``) as summarised in ``notes/issue6-reference-protocol.md``;
the report does not state them.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from methods.pointclouds import GRID, to_dense


class DensePointCloudNet(nn.Module):
    """``layers`` blocks of Conv3d (kernel 1x3x3, padding 0x1x1: the grid has depth 1), ReLU and
    2x2 pooling in height and width, then a linear classifier.

    Args:
        layers: number of blocks (the report's Table 1: 2, 3 or 4).
        pooling: ``max`` (the report's) or ``avg`` (its ablation, §4.4).
        width: channels of every block.
        in_features: features per point (3: the point's coordinates).
        num_classes: classes.
        grid: (depth, height, width) of the occupancy grid.

    Input: ``(coordinates [sum P, 4] int32, features [sum P, F], batch_size)`` from
    ``methods.pointclouds.batch_points``; output: logits ``[B, num_classes]``.
    """

    def __init__(
        self,
        layers: int,
        pooling: Literal["max", "avg"] = "max",
        width: int = 128,
        in_features: int = 3,
        num_classes: int = 10,
        grid: tuple[int, int, int] = GRID,
    ) -> None:
        super().__init__()
        if not 1 <= layers or grid[1] >> layers == 0:
            raise ValueError(f"{layers} pooling layers do not fit a {grid[1]}x{grid[2]} grid")
        pool = nn.MaxPool3d if pooling == "max" else nn.AvgPool3d
        blocks: list[nn.Module] = []
        channels = in_features
        for _ in range(layers):
            conv = nn.Conv3d(channels, width, kernel_size=(1, 3, 3), padding=(0, 1, 1))
            blocks += [conv, nn.ReLU(), pool(kernel_size=(1, 2, 2))]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.grid = grid
        cells = grid[0] * (grid[1] >> layers) * (grid[2] >> layers)
        self.classifier = nn.Linear(width * cells, num_classes)

    def forward(
        self, coordinates: torch.Tensor, features: torch.Tensor, batch_size: int
    ) -> torch.Tensor:
        dense = to_dense(coordinates, features, batch_size, self.grid)
        return self.classifier(self.features(dense).flatten(1))


def import_minkowski():
    """The ``MinkowskiEngine`` module; ``ImportError`` saying how to install it otherwise."""
    try:
        import MinkowskiEngine as ME
    except ImportError:
        raise ImportError(
            "the sparse point-cloud network needs MinkowskiEngine: run "
            "scripts/install_minkowski.sh (builds it once, about 8 minutes on 2 cores), or use "
            "the dense variant"
        ) from None
    return ME


class SparsePointCloudNet(nn.Module):
    """``layers`` blocks of MinkowskiEngine 3x3x3 sparse convolution, ReLU and 2x2x2 pooling
    (stride 2) on the occupied cells only, then the sparse result made dense
    ``[B, width, 1, S, S]`` (``S = 27 // 2**layers + 1``) and a linear classifier.

    Points are quantised as MinkowskiEngine's ``TensorField.sparse()`` does (floored
    coordinates, features of points sharing a cell averaged); gradients reach the features,
    i.e. the continuous point coordinates. Same arguments, input and output as
    ``DensePointCloudNet``.

    Raises:
        ImportError: MinkowskiEngine is not installed (the message says how to install it).
    """

    def __init__(
        self,
        layers: int,
        pooling: Literal["max", "avg"] = "max",
        width: int = 128,
        in_features: int = 3,
        num_classes: int = 10,
        grid: tuple[int, int, int] = GRID,
    ) -> None:
        super().__init__()
        ME = import_minkowski()
        if not 1 <= layers or (grid[1] - 1) >> layers == 0:
            raise ValueError(f"{layers} pooling layers do not fit a {grid[1]}x{grid[2]} grid")
        pool = ME.MinkowskiMaxPooling if pooling == "max" else ME.MinkowskiAvgPooling
        blocks: list[nn.Module] = []
        channels = in_features
        for _ in range(layers):
            conv = ME.MinkowskiConvolution(channels, width, kernel_size=3, dimension=3)
            nn.init.kaiming_normal_(conv.kernel, mode="fan_out", nonlinearity="relu")
            blocks += [conv, ME.MinkowskiReLU(), pool(kernel_size=2, stride=2, dimension=3)]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.width = width
        self.side = ((grid[1] - 1) >> layers) + 1, ((grid[2] - 1) >> layers) + 1
        self.classifier = nn.Linear(width * self.side[0] * self.side[1], num_classes)
        self._tensor_field = ME.TensorField

    def forward(
        self, coordinates: torch.Tensor, features: torch.Tensor, batch_size: int
    ) -> torch.Tensor:
        field = self._tensor_field(features=features, coordinates=coordinates.float())
        sparse = self.features(field.sparse())
        shape = torch.Size([batch_size, self.width, 1, *self.side])
        dense, _, _ = sparse.dense(shape=shape, min_coordinate=torch.IntTensor([0, 0, 0]))
        return self.classifier(dense.flatten(1))
