"""Point-cloud distillation networks accept variable-size clouds and pass gradients to points."""

import pytest
import torch

from distillbench_methods.pointcloud_networks import DensePointCloudNet, SparsePointCloudNet
from distillbench_methods.pointclouds import batch_points, image_to_points


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


def _one_block_net(layout: str) -> DensePointCloudNet:
    """1 block, 1 input feature, 1 channel on a 1x4x4 grid: the convolution is ``x + 0.5``
    (centre weight 1, bias 0.5), so every cell is easy to compute by hand."""
    net = DensePointCloudNet(
        1, width=1, in_features=1, num_classes=1, grid=(1, 4, 4), layout=layout
    )
    conv = net.features[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 1, 1] = 1.0
        conv.bias.fill_(0.5)
    return net


def test_reference_dense_block_pads_depth_and_floors_activations_at_relu_of_the_bias():
    """MEPytorch (kghandour/dd3d@d3dc89f, MEConv.py L191-194): Conv3d((1,3,3), padding=1) makes
    depth 3 whose outer slices hold only the bias; MaxPool3d(2, 2) takes the max over slice 0
    (ReLU(0.5) = 0.5) and the real one. Four points with feature -0.3 fill the top-left 2x2
    window: the real slice holds -0.3 + 0.5 = 0.2 there."""
    cells = torch.tensor([[0, 0, r, c] for r in (0, 1) for c in (0, 1)], dtype=torch.int32)
    features = torch.full((4, 1), -0.3, requires_grad=True)
    dense_in = {}
    for layout, pooled_top_left, depth in (("reference", 0.5, 3), ("fixed", 0.2, 1)):
        net = _one_block_net(layout)
        grid = net.features[0](torch.zeros(1, 1, 1, 4, 4))
        assert grid.shape == (1, 1, depth, 4, 4)
        from distillbench_methods.pointclouds import to_dense

        dense_in[layout] = to_dense(cells, features, 1, (1, 4, 4))
        pooled = net.features(dense_in[layout])
        assert pooled.shape == (1, 1, 1, 2, 2)
        assert pooled[0, 0, 0, 0, 0].item() == pytest.approx(pooled_top_left)
        # the other windows are empty: 0 + 0.5 in both layouts
        assert pooled[0, 0, 0].flatten()[1:].tolist() == [0.5, 0.5, 0.5]
        (grad,) = torch.autograd.grad(pooled[0, 0, 0, 0, 0], features)
        # reference: the maximum is the padding slice, no gradient reaches the points;
        # fixed: the first of the four tied cells gets it
        expected = [0.0] * 4 if layout == "reference" else [1.0, 0.0, 0.0, 0.0]
        assert grad.flatten().tolist() == expected


@pytest.mark.parametrize("layers, fan_in", [(2, 6272), (3, 1152), (4, 128)])
def test_dense_head_has_the_reference_fan_in_in_both_layouts(layers, fan_in):
    """MEPytorch's ``layers_out`` (MEConv.py L173-180)."""
    for layout in ("reference", "fixed"):
        assert DensePointCloudNet(layers, layout=layout).classifier.in_features == fan_in


def test_batch_min_anchor_shifts_each_batch_by_its_own_minimum():
    from distillbench_methods.pointcloud_networks import anchored

    coordinates = torch.tensor([[0, 0, 5, 7], [1, 0, 3, 9]], dtype=torch.int32)
    assert anchored(coordinates, "batch_min").tolist() == [[0, 0, 2, 0], [1, 0, 0, 2]]
    assert torch.equal(anchored(coordinates, "origin"), coordinates)


@pytest.mark.parametrize(
    "network", [DensePointCloudNet, pytest.param(SparsePointCloudNet, marks=pytest.mark.minkowski)]
)
def test_with_the_batch_min_anchor_a_translated_cloud_gives_the_same_logits(network):
    """The reference places every batch at its own minimum, so a cloud moved by whole cells
    (a multiple of 4, the stride after two sparse poolings) is seen the same; its features (its
    coordinates) are what change, so they are kept equal here."""
    cloud = torch.tensor([[0, 2, 3], [0, 5, 3], [0, 6, 9], [0, 3, 4]], dtype=torch.int32)
    features = torch.rand(4, 3, generator=torch.Generator().manual_seed(0))
    logits = {}
    for anchor in ("batch_min", "origin"):
        torch.manual_seed(0)
        net = network(2, layout="reference", anchor=anchor)
        for shift in (0, 8):
            moved = torch.cat(
                [torch.zeros(4, 1, dtype=torch.int32), cloud + shift * torch.tensor([0, 1, 1])], 1
            )
            moved[:, 1] = 0
            logits[anchor, shift] = net(moved.to(torch.int32), features, 1)
    assert torch.allclose(logits["batch_min", 0], logits["batch_min", 8], atol=1e-6)
    assert not torch.allclose(logits["origin", 0], logits["origin", 8], atol=1e-6)


@pytest.mark.minkowski
def test_reference_sparse_network_has_instance_norms_and_the_full_grid_head():
    """MEConvExp (MEConv.py L224-227, L215): MinkowskiInstanceNorm(128) after each convolution
    and Linear(100352, 10) with PyTorch's default init, bound 1/sqrt(100352): 4x smaller than a
    head over the 7x7 occupied cells (1/sqrt(6272)) of the fixed layout."""
    import MinkowskiEngine as ME

    torch.manual_seed(0)
    reference = SparsePointCloudNet(2, layout="reference")
    fixed = SparsePointCloudNet(2, layout="fixed")
    norms = [m for m in reference.features if isinstance(m, ME.MinkowskiInstanceNorm)]
    assert len(norms) == 2 and not any(
        isinstance(m, ME.MinkowskiInstanceNorm) for m in fixed.features
    )
    assert reference.classifier.in_features == 100352 and fixed.classifier.in_features == 6272
    bound = reference.classifier.weight.abs().max().item()
    assert 0.9 / 100352**0.5 < bound <= 1 / 100352**0.5
    assert fixed.classifier.weight.abs().max().item() > 3.5 * bound
