"""Point-cloud distillation networks accept variable-size clouds and pass gradients to points."""

import pytest
import torch

from methods.pointcloud_networks import DensePointCloudNet, SparsePointCloudNet
from methods.pointclouds import batch_points, image_to_points


@pytest.mark.parametrize(
    "network", [DensePointCloudNet, pytest.param(SparsePointCloudNet, marks=pytest.mark.minkowski)]
)
@pytest.mark.parametrize("layers", [2, 3, 4])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_networks_take_clouds_of_different_sizes_and_move_points(mnist, network, layers, pooling):
    train, _ = mnist
    pixels = train.images[:3] * train.card.std[0] + train.card.mean[0]
    clouds = [image_to_points(image, 0.3).float() for image in pixels]
    assert len({len(c) for c in clouds}) > 1
    synthetic = (torch.rand(40, 3, generator=torch.Generator().manual_seed(0)) * 27).mul(
        torch.tensor([0.0, 1.0, 1.0])
    )
    synthetic.requires_grad_(True)
    torch.manual_seed(0)
    net = network(layers, pooling)
    coordinates, features = batch_points([*clouds, synthetic])
    logits = net(coordinates, features, batch_size=4)
    assert logits.shape == (4, 10)
    logits[3].sum().backward()
    assert synthetic.grad is not None and synthetic.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "network", [DensePointCloudNet, pytest.param(SparsePointCloudNet, marks=pytest.mark.minkowski)]
)
def test_too_many_layers_for_the_grid_are_refused(network):
    with pytest.raises(ValueError, match="do not fit"):
        network(5)
