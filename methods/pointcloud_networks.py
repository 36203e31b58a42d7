"""Distillation networks for point-cloud MNIST (report "Dataset Distillation for 3D Point
Clouds", §3.2.2): blocks of 3-D convolution, ReLU and pooling, then flatten and a linear layer,
Kaiming-initialised. This module has the report's second variant, pure PyTorch on the batch
made dense (``bench.pointclouds.to_dense``); the MinkowskiEngine variant is to follow.

WIP (issue 6): layer widths and kernel shapes follow the reference code's ``MEPytorch``
(kghandour/dd3d, ``models/MEConv.py``) as summarised in ``notes/issue6-reference-protocol.md``;
the report does not state them.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from bench.pointclouds import GRID, to_dense


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
    ``bench.pointclouds.batch_points``; output: logits ``[B, num_classes]``.
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
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            blocks += [conv, nn.ReLU(), pool(kernel_size=(1, 2, 2))]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.grid = grid
        cells = grid[0] * (grid[1] >> layers) * (grid[2] >> layers)
        self.classifier = nn.Linear(width * cells, num_classes)
        nn.init.kaiming_normal_(self.classifier.weight, nonlinearity="linear")

    def forward(
        self, coordinates: torch.Tensor, features: torch.Tensor, batch_size: int
    ) -> torch.Tensor:
        dense = to_dense(coordinates, features, batch_size, self.grid)
        return self.classifier(self.features(dense).flatten(1))
