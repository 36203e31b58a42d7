"""Point-cloud gradient matching (pc-gm) on real MNIST: the matching step, the loop, resume."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from bench.core.errors import ConfigError
from distillbench_methods.pc_gm import (
    PCGMConfig,
    binarised,
    binary_pixels,
    build_network,
    distill,
    initial_points,
    matching_step,
    occupancy,
    projected_images,
)
from distillbench_methods.pointclouds import GRID, first_points, image_to_points, masks_to_batch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def binary_train(mnist):
    train, _ = mnist
    return binarised(train, PCGMConfig())


def real_batches(binary_train, per_class: int):
    """The first ``per_class`` clouds of every class, batched as the loop batches them."""
    occupied = occupancy(binary_train)
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
    assert torch.equal(binary_pixels(train, 75)[:50], expected[:, 0])
    # the reference feeds raw {0, 1} images (pixels="binary"); the -fixed variant normalises
    assert torch.equal(binary_train.images[:50], expected.float())
    normalised = binarised(train, PCGMConfig(pixels="normalised"))
    mean, std = train.card.mean[0], train.card.std[0]
    assert torch.allclose(normalised.images[:50], (expected.float() - mean) / std)
    assert torch.equal(occupancy(normalised)[:50], occupancy(binary_train)[:50])


def test_batched_masks_are_the_clouds_of_each_image_capped_in_raster_order(binary_train):
    occupied = occupancy(binary_train)[:6]
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
@pytest.mark.parametrize("layout", ["reference", "fixed"])
def test_which_gradients_of_the_sparse_network_have_a_graph_to_the_points(layout):
    """Pins what the module docstring states: MinkowskiEngine's convolution backward is C++, so
    the kernels' gradients have no graph to the points; the linear head's do, and in the
    reference layout so do the instance norms' affine weights and biases (ordinary torch ops)."""
    from distillbench_methods.pointclouds import batch_points

    net = build_network(PCGMConfig(network="sparse", layers=2, layout=layout), seed=0)
    points = (torch.rand(50, 3) * torch.tensor([0.0, 27.0, 27.0])).requires_grad_(True)
    coordinates, features = batch_points([points])
    loss = torch.nn.functional.cross_entropy(net(coordinates, features, 1), torch.tensor([3]))
    grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
    names = [name for name, _ in net.named_parameters()]
    has_graph = {name: g.grad_fn is not None for name, g in zip(names, grads, strict=True)}
    head = {"classifier.weight": True, "classifier.bias": True}
    if layout == "fixed":
        assert has_graph == {"features.0.kernel": False, "features.3.kernel": False, **head}
    else:  # conv, instance norm, ReLU, pool per block
        norms = {f"features.{i}.{p}": True for i in (1, 5) for p in ("weight", "bias")}
        assert has_graph == {
            "features.0.kernel": False,
            "features.4.kernel": False,
            **norms,
            **head,
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


def test_initial_points_span_the_reference_range_and_the_first_clamp_puts_the_rest_on_27():
    """Reference L299 + L311-317: ``28 * rand`` then values above 27 become 27, so a coordinate
    lands exactly on 27 with probability 1/28; ``init_span=27`` keeps them inside."""
    from distillbench_methods.pointclouds import clamp_to_grid

    points = clamp_to_grid(initial_points(10, 2000, seed=0, span=28.0))
    on_edge = (points[..., 1:] == 27).float().mean().item()
    assert abs(on_edge - 1 / 28) < 0.004  # 40000 draws: 4 standard errors ~ 0.0037
    assert (points[..., 0] == 0).all()
    inside = initial_points(10, 2000, seed=0, span=27.0)
    assert inside[..., 1:].max() < 27 and (inside[..., 1:] == 27).sum() == 0


def test_layerwise_distance_counts_a_bias_as_one_row_as_the_reference():
    """``distance_wb`` (reference): a 1-D gradient is one row, D = 1 - cos; DC skips it."""
    from distillbench_methods.gm import gradient_distance
    from distillbench_methods.pc_gm import _as_rows

    g_syn, g_real = [torch.tensor([1.0, 0.0])], [torch.tensor([1.0, 1.0])]
    expected = 1 - 1 / (2**0.5 + 1e-6)  # cos of 45 degrees, with the reference's 1e-6
    with_biases = gradient_distance(_as_rows(g_syn, True), _as_rows(g_real, True), "layerwise")
    assert with_biases.item() == pytest.approx(expected, rel=1e-6)
    assert gradient_distance(_as_rows(g_syn, False), _as_rows(g_real, False), "layerwise") == 0


def test_projected_images_are_binary_for_the_reference_and_normalised_for_the_variant(mnist):
    """``populate_img`` (reference): 1 where a (truncated) point falls, 0 elsewhere, fed raw."""
    card = mnist[0].card
    cloud = torch.tensor([[[0.0, 2.7, 3.2], [0.0, 27.0, 0.0], [0.0, 2.1, 3.9]]])
    binary = projected_images(cloud, card, "binary")
    expected = torch.zeros(1, 1, 28, 28)
    expected[0, 0, 2, 3] = expected[0, 0, 27, 0] = 1.0
    assert torch.equal(binary, expected)
    normalised = projected_images(cloud, card, "normalised")
    assert torch.allclose(normalised, (expected - card.mean[0]) / card.std[0])
