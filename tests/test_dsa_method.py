"""DSA as a method (``DSAConfig`` in ``distillbench_methods.gm``): DC's matching with one siamese
transform per class, the inner loop augmented, and DC itself untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from bench.core.errors import ConfigError
from bench.data.real import load_card, load_real
from bench.evaluation.networks import build_network
from distillbench_methods import gm


def test_a_class_whose_synthetic_images_are_its_real_batch_matches_exactly_under_dsa():
    """The real and synthetic batch of a class share one transform, so equal batches give equal
    gradients and a squared distance of zero; two transforms would keep the sides apart (the
    layer-wise distance is not zero even for equal gradients: the 1e-6 in its denominator)."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2, 4, 1, 28, 28, generator=g)  # 2 classes x 4 real images
    images = real.reshape(8, 1, 28, 28).clone()  # ipc 4: S_c = T_c
    net = build_network("ConvNet", 1, 2, (28, 28), seed=1)
    config = gm.DSAConfig(dsa_strategy="crop_scale_rotate", distance="mse")
    for seed in range(3):
        seeds = gm.draw_dsa_seeds(2, torch.Generator().manual_seed(seed))
        loss, grad = gm.matching_step(net, images, 4, real, config, dsa_seeds=seeds)
        assert loss.item() < 1e-8 and grad.shape == images.shape
    other = gm.matching_step(net, images, 4, real, config, dsa_seeds=[1, 2])[0]
    shifted = gm.matching_step(net, images.roll(4, dims=0), 4, real, config, dsa_seeds=[1, 2])[0]
    assert other.item() < 1e-8 and shifted.item() > 1e-5


def test_dsa_refuses_the_batched_matching_and_an_unknown_part():
    with pytest.raises(ConfigError, match="per_class"):
        gm.DSAConfig(matching="batched")
    with pytest.raises(ConfigError, match="method.dsa_strategy"):
        gm.DSAConfig(dsa_strategy="crop_jitter")
    assert gm.dsa_strategy(gm.GMConfig()) is None  # DC draws no DSA seeds
    assert gm.dsa_strategy(gm.DSAConfig(dsa_strategy="none")) is None


@pytest.mark.slow
def test_a_short_dsa_distillation_on_mnist_resumes_exactly(data_root):
    """Four outer iterations at ipc 1 (16 real images per class): named ``dsa``, started from
    real images, and 2 + 2 iterations resumed equal 4 in one go."""
    real = load_real(load_card("mnist"), data_root, "train")
    config = gm.DSAConfig(
        iterations=4, batch_real=16, dsa_strategy="color_crop_cutout_scale_rotate"
    )
    states = {}

    def record(it, metrics, state):
        if it == 1:
            states["half"] = copy.deepcopy(state())

    cpu = torch.device("cpu")
    whole = gm.distill(real, 1, config, seed=5, device=cpu, after_iteration=record)
    resumed = gm.distill(real, 1, config, seed=5, device=cpu, resume=states["half"])
    assert whole.method == "dsa" and torch.equal(whole.images, resumed.images)
    start = gm.initial_synthetic_images(
        [real.images[real.labels == c] for c in range(10)], 1, config, 5
    )
    assert not torch.equal(start, whole.images)
    assert start.abs().max() < 10  # real initial images (normalised pixels), not noise
