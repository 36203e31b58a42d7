"""Point-cloud MNIST: binary images as sets of 3-D points, batched for sparse or dense networks.

Follows "Dataset Distillation for 3D Point Clouds" (ElGhandour; ``../shared/seeds/001_*``,
§3.1): MNIST is thresholded to binary, every occupied pixel becomes a point
``(depth=0, height, width)`` of a ``1 x 28 x 28`` occupancy grid, so samples have different
numbers of points. The coordinates are also the points' features (§3.1.3, "coordinates as
features"): a synthetic cloud keeps continuous coordinates ``[P, 3]`` that receive gradients;
``floor`` of them indexes the grid, their values are what the network reads.
"""

from __future__ import annotations

import torch

from bench.api import atomic_target

GRID = (1, 28, 28)
"""the occupancy grid of point-cloud MNIST: (depth, height, width)"""


def image_to_points(pixels: torch.Tensor, threshold: float) -> torch.Tensor:
    """The points of one image: ``pixels [1, H, W]`` (intensities in [0, 1]) above ``threshold``
    as integer coordinates ``[P, 3]`` = (0, row, column), in row-major order.

    Raises:
        ValueError: not a single-channel image, or a threshold outside [0, 1).
    """
    if pixels.ndim != 3 or pixels.shape[0] != 1:
        raise ValueError(f"expected one image [1, H, W], got shape {tuple(pixels.shape)}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    rows_cols = torch.nonzero(pixels[0] > threshold)
    return torch.cat([rows_cols.new_zeros(len(rows_cols), 1), rows_cols], dim=1)


def points_to_image(points: torch.Tensor, grid: tuple[int, int, int] = GRID) -> torch.Tensor:
    """Project points ``[P, 3]`` (integer or continuous (depth, height, width)) back to a binary
    image ``[1, H, W]`` (float32, 1 where at least one point falls): coordinates are floored and
    clamped into the grid, depth is dropped. Inverse of ``image_to_points`` on binary images."""
    cells = clamp_to_grid(points.detach(), grid).floor().long()
    image = torch.zeros(1, grid[1], grid[2])
    image[0, cells[:, 1], cells[:, 2]] = 1.0
    return image


def clamp_to_grid(points: torch.Tensor, grid: tuple[int, int, int] = GRID) -> torch.Tensor:
    """``points [..., 3]`` clamped into ``[0, grid - 1]`` per axis (the report's boundary check,
    §3.1.2, applied to synthetic clouds at the start of every iteration); on a grid of depth 1
    this also puts every point back at depth 0. Returns a new tensor."""
    upper = torch.tensor([g - 1 for g in grid], dtype=points.dtype, device=points.device)
    return torch.minimum(points.clamp(min=0), upper)


def first_points(masks: torch.Tensor, max_points: int) -> torch.Tensor:
    """Occupancy masks ``[N, H, W]`` (bool) keeping only each sample's first ``max_points``
    occupied pixels in row-major order (the reference code's cut of real clouds to
    ``num_points``, kghandour/dd3d ``utils/Mnist2D.py``)."""
    flat = masks.flatten(1)
    keep = flat & (flat.cumsum(1) <= max_points)
    return keep.view_as(masks)


def masks_to_batch(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_points`` of the clouds of occupancy masks ``[B, H, W]`` (bool), without a Python
    loop over samples: coordinates ``[sum P, 4]`` int32 = (sample, 0, row, column), features
    ``[sum P, 3]`` float32 = (0, row, column)."""
    index = torch.nonzero(masks)  # (sample, row, column), row-major within each sample
    zeros = index.new_zeros(len(index), 1)
    coordinates = torch.cat([index[:, :1], zeros, index[:, 1:]], dim=1).to(torch.int32)
    features = torch.cat([zeros, index[:, 1:]], dim=1).float()
    return coordinates, features


def batch_points(clouds: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch clouds of different sizes as MinkowskiEngine does (``ME.utils.batched_coordinates``):
    integer coordinates ``[sum P, 4]`` = (sample index, depth, height, width), int32, from the
    floored points, and features ``[sum P, 3]`` = the points themselves (float32; gradients flow
    back to continuous synthetic points)."""
    coordinates, features = [], []
    for index, cloud in enumerate(clouds):
        cells = cloud.detach().floor().to(torch.int32)
        column = torch.full((len(cloud), 1), index, dtype=torch.int32, device=cloud.device)
        coordinates.append(torch.cat([column, cells], dim=1))
        features.append(cloud.float())
    return torch.cat(coordinates), torch.cat(features)


def to_dense(
    coordinates: torch.Tensor,
    features: torch.Tensor,
    batch_size: int,
    grid: tuple[int, int, int] = GRID,
) -> torch.Tensor:
    """A batch from ``batch_points`` as a dense tensor ``[B, F, D, H, W]`` for pure-PyTorch 3-D
    convolutions (the report's second variant): each occupied cell holds the mean of the
    features of its points (MinkowskiEngine's default for points sharing a cell), empty cells
    hold zeros. Differentiable with respect to ``features``."""
    b, d, h, w = coordinates.long().unbind(1)
    flat = ((b * grid[0] + d) * grid[1] + h) * grid[2] + w
    cells = batch_size * grid[0] * grid[1] * grid[2]
    sums = features.new_zeros(cells, features.shape[1]).index_add(0, flat, features)
    counts = features.new_zeros(cells).index_add(
        0, flat, torch.ones_like(flat, dtype=features.dtype)
    )
    dense = sums / counts.clamp(min=1).unsqueeze(1)
    return dense.view(batch_size, *grid, features.shape[1]).permute(0, 4, 1, 2, 3).contiguous()


def save_point_cloud_render(
    initial: torch.Tensor,
    final: torch.Tensor,
    labels: torch.Tensor,
    class_names: tuple[str, ...],
    path,
    grid: tuple[int, int, int] = GRID,
):
    """PNG of synthetic clouds, one column per class (its first cloud): the points at the start
    of distillation, at the end, and the end's projection to an image (what the evaluation
    trains on). ``initial``/``final`` are ``[N, P, 3]`` (depth, height, width), ``labels``
    ``[N]``. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(class_names)
    fig, axes = plt.subplots(3, columns, figsize=(columns * 1.1, 3.7), squeeze=False)
    for c in range(columns):
        picks = (labels.cpu() == c).nonzero().flatten()
        for r, ax in enumerate(axes[:, c]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, grid[2] - 0.5)
            ax.set_ylim(grid[1] - 0.5, -0.5)  # image orientation: row 0 at the top
            ax.set_aspect("equal")
            if not len(picks):
                continue
            if r < 2:
                points = (initial if r == 0 else final)[picks[0]].detach().cpu()
                ax.scatter(points[:, 2], points[:, 1], s=1.5, c="tab:blue", linewidths=0)
            else:
                image = points_to_image(final[picks[0]].cpu(), grid)[0]
                ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=None)
        axes[0, c].set_title(class_names[c], fontsize=8)
    for r, name in enumerate(("start", "end", "image")):
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.2)
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
