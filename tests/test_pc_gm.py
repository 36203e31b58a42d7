"""Point-cloud gradient matching (pc-gm) on real MNIST: the matching step, the loop, resume."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from bench.core.errors import ConfigError
from methods.pc_gm import (
    PCGMConfig,
    binarised,
    binary_pixels,
    build_network,
    distill,
    matching_step,
)
from methods.pointclouds import GRID, first_points, image_to_points, masks_to_batch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def binary_train(mnist):
    train, _ = mnist
    return binarised(train, PCGMConfig())


def real_batches(binary_train, per_class: int):
    """The first ``per_class`` clouds of every class, batched as the loop batches them."""
    occupied = binary_pixels(binary_train, 75)
    batches = []
    for c in range(10):
        masks = occupied[binary_train.labels == c][:per_class]
        coordinates, features = masks_to_batch(masks)
        batches.append((coordinates, features, len(masks)))
    return batches


def test_binarised_mnist_keeps_pixels_above_the_threshold(mnist, binary_train):
    train, _ = mnist
    raw = (train.images[:50] * train.card.std[0] + train.card.mean[0]) * 255
    expected = raw.round() > 75
    assert torch.equal(binary_pixels(binary_train, 75)[:50], expected[:, 0])
    # the binary split is itself a normalised RealSet: exactly two values
    assert binary_train.images[:50].unique().numel() == 2


def test_batched_masks_are_the_clouds_of_each_image_capped_in_raster_order(binary_train):
    occupied = binary_pixels(binary_train, 75)[:6]
    capped = first_points(occupied, 40)
    coordinates, features = masks_to_batch(capped)
    for b in range(6):
        cloud = image_to_points(occupied[b : b + 1].float(), 0.5)
        assert torch.equal(features[coordinates[:, 0] == b], cloud[:40].float())
    assert (coordinates[:, 0].bincount() <= 40).all()


@pytest.mark.parametrize("network", ["dense", pytest.param("sparse", marks=pytest.mark.minkowski)])
def test_gradient_reaches_the_coordinates_and_one_step_moves_them(binary_train, network):
    config = PCGMConfig(network=network, layers=2)
    net = build_network(config, seed=0)
    points = torch.rand(10, 60, 3, generator=torch.Generator().manual_seed(0)) * 27
    points[..., 0] = 0
    points.requires_grad_(True)
    loss, grad = matching_step(net, points, 1, real_batches(binary_train, 16), config)
    assert loss > 0 and grad.shape == points.shape
    assert grad[..., 1:].abs().sum(-1).gt(0).float().mean() > 0.5  # most points get a gradient
    optimizer = torch.optim.SGD([points], lr=0.1, momentum=0.5)
    before = points.detach().clone()
    points.grad = grad
    optimizer.step()
    assert (points.detach() - before).abs().mean() > 0


@pytest.mark.minkowski
def test_minkowski_kernel_gradients_have_no_graph_to_the_points():
    """Pins what the module docstring states: in the sparse variant only the linear head's
    gradients depend differentiably on the points (MinkowskiEngine's backward is C++)."""
    from methods.pointclouds import batch_points

    net = build_network(PCGMConfig(network="sparse", layers=2), seed=0)
    points = (torch.rand(50, 3) * torch.tensor([0.0, 27.0, 27.0])).requires_grad_(True)
    coordinates, features = batch_points([points])
    loss = torch.nn.functional.cross_entropy(net(coordinates, features, 1), torch.tensor([3]))
    grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
    names = [name for name, _ in net.named_parameters()]
    has_graph = {name: g.grad_fn is not None for name, g in zip(names, grads, strict=True)}
    assert has_graph == {
        "features.0.kernel": False,
        "features.3.kernel": False,
        "classifier.weight": True,
        "classifier.bias": True,
    }


@pytest.mark.parametrize("network", ["dense", pytest.param("sparse", marks=pytest.mark.minkowski)])
def test_distillation_moves_points_keeps_them_in_the_grid_and_logs_diagnostics(
    binary_train, network
):
    config = PCGMConfig(network=network, iterations=3, batch_real=16, points=80)
    logged = []
    synset = distill(
        binary_train, 1, config, 0, CPU, after_iteration=lambda it, m, _: logged.append(m)
    )
    assert [set(m) for m in logged] == [
        {"distill/loss", "distill/coord_grad_abs", "distill/coord_step_abs"}
    ] * 3
    assert all(m["distill/coord_step_abs"] > 0 and m["distill/coord_grad_abs"] > 0 for m in logged)
    points = synset.extras["points"]
    assert points.shape == synset.extras["initial_points"].shape == (10, 80, 3)
    assert (points[..., 0] == 0).all() and (points >= 0).all()
    assert (points <= torch.tensor([g - 1 for g in GRID], dtype=torch.float32)).all()
    assert not torch.equal(points, synset.extras["initial_points"])
    assert synset.images.shape == (10, 1, 28, 28) and synset.labels.tolist() == list(range(10))


def test_resumed_distillation_continues_exactly(binary_train):
    config = PCGMConfig(network="dense", iterations=4, batch_real=8, points=30)
    states = {}

    def keep(it, _, state):  # as the runner's checkpoint: a copy, not the live buffers
        states[it] = copy.deepcopy(state())

    straight = distill(binary_train, 1, config, 5, CPU, after_iteration=keep)
    resumed = distill(binary_train, 1, config, 5, CPU, resume=states[1])
    assert torch.equal(straight.extras["points"], resumed.extras["points"])


def test_sparse_variant_without_minkowski_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "MinkowskiEngine", None)  # import fails as if absent
    with pytest.raises(ImportError, match="scripts/install_minkowski.sh"):
        build_network(PCGMConfig(network="sparse"), seed=0)
    assert build_network(PCGMConfig(network="dense"), seed=0) is not None


def test_bad_config_is_refused_with_the_key_named():
    with pytest.raises(ConfigError, match="method.layers"):
        PCGMConfig(layers=5)
    with pytest.raises(ConfigError, match="method.threshold"):
        PCGMConfig(threshold=300)
