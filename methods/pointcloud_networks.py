"""Distillation networks for point-cloud MNIST (report "Dataset Distillation for 3D Point
Clouds", §3.2.2): blocks of 3-D convolution (, instance norm), ReLU and pooling, then flatten
and a linear layer, initialised as the reference code does it: PyTorch layers keep PyTorch's
default (``kaiming_uniform_`` with ``a=sqrt(5)``), MinkowskiEngine kernels get
``kaiming_normal_`` (fan out, ReLU). The scale matters: the points move by lr x gradient, and a
larger initialisation moves them by whole pixels per step.

Two variants: MinkowskiEngine sparse convolutions on the points (``SparsePointCloudNet``,
needs MinkowskiEngine: ``scripts/install_minkowski.sh``) and pure PyTorch on the batch made
dense (``DensePointCloudNet``, ``distillbench_methods.pointclouds.to_dense``). Each has two layouts:

- ``reference`` (kghandour/dd3d@d3dc89f, ``models/MEConv.py``): ``MEConvExp`` (sparse) puts
  ``MinkowskiInstanceNorm`` after every convolution and reads the result through a dense grid
  of the full 28 x 28 size, ``Linear(width * 784, K)`` (100352 inputs for width 128, most of
  them always zero); ``MEPytorch`` (dense) uses ``Conv3d(kernel (1, 3, 3), padding=1)``, which
  also pads the depth-1 grid to depth 3 with slices that hold only the bias, and
  ``MaxPool3d(2, 2)``, which takes the maximum over one such slice and the real one.
- ``fixed``: no instance norm and a head over the cells that can be occupied (sparse); padding
  ``(0, 1, 1)`` and ``(1, 2, 2)`` pooling (dense).

``anchor`` places the batch in the dense grid: ``batch_min`` shifts it by its own minimum
coordinate per axis (both reference networks: ``min_coordinate`` of ``SparseTensor.dense``,
so real batches of 256 digits and a single synthetic cloud are translated differently);
``origin`` leaves coordinates as they are.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from distillbench_methods.pointclouds import GRID, to_dense

Layout = Literal["reference", "fixed"]
Anchor = Literal["batch_min", "origin"]


def anchored(coordinates: torch.Tensor, anchor: Anchor) -> torch.Tensor:
    """Batched coordinates ``[n, 4]`` = (sample, depth, row, column) placed in the dense grid:
    ``batch_min`` subtracts the minimum of each spatial column over the whole batch (as the
    reference's ``min_coordinate``), ``origin`` returns them unchanged."""
    if anchor == "origin" or len(coordinates) == 0:
        return coordinates
    low = coordinates[:, 1:].min(dim=0).values
    return torch.cat([coordinates[:, :1], coordinates[:, 1:] - low], dim=1)


class DensePointCloudNet(nn.Module):
    """``layers`` blocks of Conv3d (kernel 1x3x3), ReLU and pooling, then a linear classifier.

    ``layout="reference"`` (``MEPytorch``): padding 1 on every axis and 2x2x2 pooling with
    stride 2, so each block pads the depth-1 grid to 3 (the outer slices hold ReLU(bias)) and
    pools back to depth 1 over the first two slices: every activation is at least ReLU(bias)
    and the gradient of a cell goes to the padding slice where that is the maximum (the first
    maximum wins ties, as PyTorch's max pooling). ``layout="fixed"``: padding (0, 1, 1) and
    (1, 2, 2) pooling, no padding slices. The spatial size is ``28 >> layers`` either way.

    Args:
        layers: number of blocks (the report's Table 1: 2, 3 or 4).
        pooling: ``max`` (the report's) or ``avg`` (its ablation, §4.4).
        width: channels of every block.
        in_features: features per point (3: the point's coordinates).
        num_classes: classes.
        grid: (depth, height, width) of the occupancy grid.
        layout: ``reference`` or ``fixed`` (above).
        anchor: ``batch_min`` or ``origin`` (``anchored``).

    Input: ``(coordinates [sum P, 4] int32, features [sum P, F], batch_size)`` from
    ``distillbench_methods.pointclouds.batch_points``; output: logits ``[B, num_classes]``.

    Raises:
        ValueError: more pooling layers than the grid has room for.
    """

    def __init__(
        self,
        layers: int,
        pooling: Literal["max", "avg"] = "max",
        width: int = 128,
        in_features: int = 3,
        num_classes: int = 10,
        grid: tuple[int, int, int] = GRID,
        layout: Layout = "fixed",
        anchor: Anchor = "origin",
    ) -> None:
        super().__init__()
        if not 1 <= layers or grid[1] >> layers == 0:
            raise ValueError(f"{layers} pooling layers do not fit a {grid[1]}x{grid[2]} grid")
        pool = nn.MaxPool3d if pooling == "max" else nn.AvgPool3d
        padding, window = (
            ((1, 1, 1), (2, 2, 2)) if layout == "reference" else ((0, 1, 1), (1, 2, 2))
        )
        blocks: list[nn.Module] = []
        channels = in_features
        for _ in range(layers):
            conv = nn.Conv3d(channels, width, kernel_size=(1, 3, 3), padding=padding)
            blocks += [conv, nn.ReLU(), pool(kernel_size=window, stride=window)]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.grid = grid
        self.anchor = anchor
        # depth: 1 -> 3 (padding) -> 1 (pooling) per reference block, 1 throughout when fixed
        cells = grid[0] * (grid[1] >> layers) * (grid[2] >> layers)
        self.classifier = nn.Linear(width * cells, num_classes)

    def forward(
        self, coordinates: torch.Tensor, features: torch.Tensor, batch_size: int
    ) -> torch.Tensor:
        dense = to_dense(anchored(coordinates, self.anchor), features, batch_size, self.grid)
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
    """``layers`` blocks of MinkowskiEngine 3x3x3 sparse convolution (no bias), with
    ``layout="reference"`` ``MinkowskiInstanceNorm(width)``, then ReLU and 2x2x2 pooling
    (stride 2) on the occupied cells only; then the sparse result made dense (stride
    contracted) and a linear classifier: over the full grid ``[B, width, 1, 28, 28]`` with
    ``layout="reference"`` (``MEConvExp``'s ``Linear(100352, 10)``, whose PyTorch default
    initialisation is ``sqrt(784 / S^2)`` times smaller than a head over the ``S x S`` cells
    that can be occupied), over ``[B, width, 1, S, S]`` (``S = 27 // 2**layers + 1``) with
    ``layout="fixed"``.

    Points are quantised as MinkowskiEngine's ``TensorField.sparse()`` does (floored
    coordinates, features of points sharing a cell averaged); gradients reach the features,
    i.e. the continuous point coordinates. Same arguments, input and output as
    ``DensePointCloudNet``.

    Raises:
        ImportError: MinkowskiEngine is not installed (the message says how to install it).
        ValueError: more pooling layers than the grid has room for.
    """

    def __init__(
        self,
        layers: int,
        pooling: Literal["max", "avg"] = "max",
        width: int = 128,
        in_features: int = 3,
        num_classes: int = 10,
        grid: tuple[int, int, int] = GRID,
        layout: Layout = "fixed",
        anchor: Anchor = "origin",
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
            norm = [ME.MinkowskiInstanceNorm(width)] if layout == "reference" else []
            blocks += [conv, *norm, ME.MinkowskiReLU(), pool(kernel_size=2, stride=2, dimension=3)]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.width = width
        self.anchor = anchor
        if layout == "reference":
            self.side = grid[1], grid[2]
        else:
            self.side = ((grid[1] - 1) >> layers) + 1, ((grid[2] - 1) >> layers) + 1
        self.classifier = nn.Linear(width * self.side[0] * self.side[1], num_classes)
        self._tensor_field = ME.TensorField

    def forward(
        self, coordinates: torch.Tensor, features: torch.Tensor, batch_size: int
    ) -> torch.Tensor:
        field = self._tensor_field(features=features, coordinates=coordinates.float())
        sparse = self.features(field.sparse())
        shape = torch.Size([batch_size, self.width, 1, *self.side])
        if self.anchor == "batch_min":  # the output cells' minimum, a multiple of the stride
            low = sparse.C[:, 1:].min(dim=0).values.cpu().to(torch.int32)
        else:
            low = torch.IntTensor([0, 0, 0])
        dense, _, _ = sparse.dense(shape=shape, min_coordinate=low)
        return self.classifier(dense.flatten(1))
