"""Point-cloud MNIST (report §3.1): conversion, boundary check, batching."""

import pytest
import torch

from distillbench_methods.pointclouds import (
    GRID,
    batch_points,
    clamp_to_grid,
    image_to_points,
    points_to_image,
    to_dense,
)


def pixels(mnist, count: int) -> torch.Tensor:
    """The first ``count`` MNIST training images as intensities in [0, 1]."""
    train, _ = mnist
    mean, std = train.card.mean[0], train.card.std[0]
    return train.images[:count] * std + mean


def test_points_and_back_is_lossless_for_binary_mnist(mnist):
    for image in pixels(mnist, 200):
        binary = (image > 0.5).float()
        points = image_to_points(image, 0.5)
        assert points.shape[1] == 3 and (points[:, 0] == 0).all()
        assert len(points) == int(binary.sum())
        assert torch.equal(points_to_image(points), binary)


def test_samples_have_different_numbers_of_points_and_batch_together(mnist):
    clouds = [image_to_points(image, 0.5).float() for image in pixels(mnist, 4)]
    assert len({len(c) for c in clouds}) > 1
    coordinates, features = batch_points(clouds)
    assert coordinates.dtype == torch.int32 and coordinates.shape == (sum(map(len, clouds)), 4)
    assert torch.equal(coordinates[:, 0].bincount(), torch.tensor([len(c) for c in clouds]))
    assert torch.equal(features, torch.cat(clouds))


def test_clamping_keeps_every_point_in_the_grid():
    points = torch.tensor([[-3.0, 40.0, -0.5], [0.2, 12.5, 27.9], [2.0, -1.0, 100.0]])
    clamped = clamp_to_grid(points)
    upper = torch.tensor([g - 1 for g in GRID], dtype=torch.float32)
    assert (clamped >= 0).all() and (clamped <= upper).all()
    assert torch.equal(clamped[1], torch.tensor([0.0, 12.5, 27.0]))


def test_dense_batch_averages_shared_cells_and_passes_gradients_to_the_points():
    points = torch.tensor([[0.0, 3.2, 4.0], [0.0, 3.7, 4.5], [0.0, 10.0, 1.0]], requires_grad=True)
    coordinates, features = batch_points([points[:2], points[2:]])
    dense = to_dense(coordinates, features, batch_size=2)
    assert dense.shape == (2, 3, *GRID)
    # the two points of sample 0 share cell (0, 3, 4): the cell holds their mean
    torch.testing.assert_close(dense[0, :, 0, 3, 4], torch.tensor([0.0, 3.45, 4.25]))
    torch.testing.assert_close(dense[1, :, 0, 10, 1], torch.tensor([0.0, 10.0, 1.0]))
    assert int((dense.abs().sum(1) > 0).sum()) == 2
    dense.sum().backward()
    torch.testing.assert_close(
        points.grad, torch.full((3, 3), 1.0).mul(torch.tensor([[0.5], [0.5], [1.0]]))
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\[1, H, W\]"):
        image_to_points(torch.zeros(3, 28, 28), 0.5)
    with pytest.raises(ValueError, match="threshold"):
        image_to_points(torch.zeros(1, 28, 28), 1.5)
