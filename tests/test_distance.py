"""The gradient distances of DC (paper Eq. 11; reference utils.match_loss)."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from distillbench_methods.gm import gradient_distance


def _grads(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(128, 1, 3, 3), (128,), (128, 128, 3, 3), (10, 2048), (10,)]
    return [torch.randn(s, generator=g) for s in shapes]


def test_layerwise_is_zero_for_equal_gradients():
    g = _grads(0)
    assert gradient_distance(g, g, "layerwise").item() == pytest.approx(0.0, abs=1e-4)


def test_layerwise_is_invariant_to_scaling_one_side():
    a, b = _grads(0), _grads(1)
    base = gradient_distance(a, b, "layerwise")
    scaled = gradient_distance([3.7 * t for t in a], b, "layerwise")
    assert base.item() > 1.0
    assert scaled.item() == pytest.approx(base.item(), rel=1e-5)


def test_layerwise_sums_one_minus_cosine_per_output_unit_and_skips_biases():
    a = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([5.0, -5.0])]
    b = [torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([-5.0, 5.0])]
    # row 0 orthogonal (1 - 0), row 1 parallel (1 - 1); the 1-D bias is skipped
    assert gradient_distance(a, b, "layerwise").item() == pytest.approx(1.0, abs=1e-5)


def test_mse_and_cos_on_concatenated_gradients():
    a = [torch.tensor([[3.0, 0.0]]), torch.tensor([0.0])]
    b = [torch.tensor([[0.0, 4.0]]), torch.tensor([0.0])]
    assert gradient_distance(a, b, "mse").item() == pytest.approx(25.0)
    assert gradient_distance(a, b, "cos").item() == pytest.approx(1.0, abs=1e-6)
    assert gradient_distance(a, a, "cos").item() == pytest.approx(0.0, abs=1e-6)


def test_mismatched_gradients_are_rejected():
    a, b = _grads(0), _grads(1)
    with pytest.raises(ValueError, match="same shapes"):
        gradient_distance(a[:-1], b)
    with pytest.raises(ValueError, match="unknown gradient distance"):
        gradient_distance(a, b, "l1")


@pytest.mark.parametrize("kind", ["layerwise", "mse", "cos"])
def test_batched_matching_gives_the_per_class_loss_and_gradient(kind):
    from bench.data.real import load_card
    from bench.evaluation.networks import build_network
    from distillbench_methods.gm import batched_matching_step, gradient_distance

    card = load_card("mnist")
    g = torch.Generator().manual_seed(0)
    net = build_network("ConvNet", 1, 10, (28, 28), seed=3).train()
    ipc = 2
    images = torch.randn(10 * ipc, 1, 28, 28, generator=g).requires_grad_(True)
    real = torch.randn(10, 8, 1, 28, 28, generator=g)
    params = list(net.parameters())
    expected = 0.0
    for c in range(10):
        labels_real = torch.full((8,), c)
        g_real = torch.autograd.grad(F.cross_entropy(net(real[c]), labels_real), params)
        syn = images[c * ipc : (c + 1) * ipc]
        loss_syn = F.cross_entropy(net(syn), torch.full((ipc,), c))
        g_syn = torch.autograd.grad(loss_syn, params, create_graph=True)
        distance = gradient_distance(g_syn, [x.detach() for x in g_real], kind)
        distance.backward()
        expected += distance.item()
    loss, gradient = batched_matching_step(net, images, ipc, real, kind)
    assert card.num_classes == 10
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(gradient, images.grad, rtol=1e-4, atol=1e-6)


def test_batched_matching_distils_the_same_set(mnist):
    from distillbench_methods.gm import GMConfig, distill

    train, _ = mnist
    config = GMConfig(iterations=2, batch_real=16)
    plain = distill(train, 1, config, seed=0, device=torch.device("cpu"))
    batched = distill(
        train, 1, dataclasses.replace(config, matching="batched"), 0, torch.device("cpu")
    )
    # float summation order only: a few pixels differ in the 4th decimal, the set as a whole
    # by ~1e-5 of its norm (a wrong class, batch or sign would differ by order 1)
    gap = float((batched.images - plain.images).norm() / plain.images.norm())
    assert gap < 1e-4


@pytest.fixture(scope="module")
def matching_case(mnist):
    """One network, 2 synthetic images per class and a real batch of 32 per class of MNIST."""
    from bench.evaluation.networks import build_network

    train, _ = mnist
    g = torch.Generator().manual_seed(0)
    real = torch.stack([train.images[train.labels == c][:32] for c in range(10)])
    images = torch.randn(20, 1, 28, 28, generator=g)
    return build_network("ConvNet", 1, 10, (28, 28), seed=3).train(), images, real


@pytest.mark.parametrize(
    "option", [{"channels_last": True}, {"compile": True}, {"matching": "batched"}]
)
def test_fast_matching_options_give_the_plain_loss_and_gradient(matching_case, option):
    from distillbench_methods.gm import GMConfig, RealGradients, matching_step

    net, images, real = matching_case
    plain_loss, plain_grad = matching_step(net, images, 2, real, GMConfig())
    fast_net = copy.deepcopy(net)
    if option.get("channels_last"):
        fast_net = fast_net.to(memory_format=torch.channels_last)
    config = GMConfig(**option)
    loss, grad = matching_step(
        fast_net, images, 2, real, config, RealGradients(compiled=config.compile)
    )
    assert loss.item() == pytest.approx(plain_loss.item(), rel=1e-4)
    # float summation order only; a wrong class or batch would differ by order 1
    assert float((grad - plain_grad).norm() / plain_grad.norm()) < 1e-3


def test_bf16_autocast_keeps_the_matching_loss_within_one_percent_of_fp32(matching_case):
    from distillbench_methods.gm import GMConfig, matching_step

    net, images, real = matching_case
    fp32_loss, fp32_grad = matching_step(net, images, 2, real, GMConfig())
    loss, grad = matching_step(net, images, 2, real, GMConfig(precision="bf16"))
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    assert loss.item() != fp32_loss.item()  # bf16 did run
    assert loss.item() == pytest.approx(fp32_loss.item(), rel=0.01)
    cosine = F.cosine_similarity(grad.flatten(), fp32_grad.flatten(), dim=0)
    assert cosine > 0.99
