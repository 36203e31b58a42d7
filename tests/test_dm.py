"""Distribution matching (``distillbench_methods.dm``): the loss against a hand computation,
the siamese augmentation of both sides, and a short distillation on real MNIST."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bench.core.errors import ConfigError
from bench.data.real import load_card, load_real
from distillbench_methods import dm


class _LinearEmbed(torch.nn.Module):
    """``embed(x) = flatten(x) @ W``: a network whose embedding numpy can recompute."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight


def test_the_loss_is_the_summed_squared_distance_of_class_mean_embeddings():
    """Paper Eq. 4 without augmentation, recomputed in float64 numpy."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(3, 5, 1, 4, 4, generator=g)  # 3 classes x 5 real images
    images = torch.randn(3 * 2, 1, 4, 4, generator=g, requires_grad=True)  # ipc 2
    weight = torch.randn(16, 7, generator=g)
    loss = dm.mean_embedding_loss(_LinearEmbed(weight), real, images, 2, None, g)
    w = weight.double().numpy()
    expected = 0.0
    for c in range(3):
        real_mean = (real[c].flatten(1).double().numpy() @ w).mean(axis=0)
        syn = images[2 * c : 2 * c + 2].detach().flatten(1).double().numpy()
        expected += float(((real_mean - (syn @ w).mean(axis=0)) ** 2).sum())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()  # differentiable in the synthetic images only
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_each_class_augments_its_real_and_synthetic_batch_with_one_transform():
    """A synthetic set equal to the real batch's images gets the same augmented images, so the
    loss is exactly zero with DSA on (two independent transforms would move the means apart)."""
    g = torch.Generator().manual_seed(1)
    real = torch.randn(2, 3, 1, 8, 8, generator=g)
    images = real.reshape(6, 1, 8, 8).clone().requires_grad_(True)  # ipc 3: S_c = T_c
    weight = torch.randn(64, 5, generator=g)
    net = _LinearEmbed(weight)
    strategy = "crop_scale_rotate"
    for seed in range(5):
        loss = dm.mean_embedding_loss(
            net, real, images, 3, strategy, torch.Generator().manual_seed(seed)
        )
        assert loss.item() == pytest.approx(0.0, abs=1e-9)


def test_a_batchnorm_model_or_an_unknown_strategy_part_is_refused():
    with pytest.raises(ConfigError, match="BatchNorm"):
        dm.DMConfig(model="ConvNetBN")
    with pytest.raises(ConfigError, match="method.dsa_strategy"):
        dm.DMConfig(dsa_strategy="crop_blur")


@pytest.mark.slow
def test_a_short_distillation_on_mnist_lowers_the_loss_and_resumes_exactly(data_root):
    """40 updates on real MNIST (DSA on, 32 real images per class): the last updates' mean loss
    is below the first's, and 20 + 20 updates resumed equal 40 in one go."""
    real = load_real(load_card("mnist"), data_root, "train")
    config = dm.DMConfig(iterations=40, batch_real=32)
    losses, states = [], {}

    def record(it, metrics, state):
        losses.append(metrics["distill/loss"])
        if it == 19:  # a copy, as the runner's checkpoint is (the optimizer's buffers move on)
            states["half"] = copy.deepcopy(state())

    cpu = torch.device("cpu")
    whole = dm.distill(real, 1, config, seed=3, device=cpu, after_iteration=record)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    resumed = dm.distill(real, 1, config, seed=3, device=cpu, resume=states["half"])
    assert torch.equal(whole.images, resumed.images)
    assert whole.images.shape == (10, 1, 28, 28) and whole.labels.tolist() == list(range(10))
