"""DC's crop/scale/rotate augmentation: the reference's transforms (checked against hand-computed
pixels and numpy's own rotation) and draws with the reference's distributions (checked against
the exact probabilities)."""

import numpy as np
import pytest
import torch
from scipy import stats

from bench.data.augment import dc_augment, dc_crop, dc_draws, dc_rotate, dc_scale


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 1, 28, 28, generator=g)


def test_same_generator_state_gives_the_same_augmentation():
    x = _batch()
    a = dc_augment(x, torch.Generator().manual_seed(5))
    b = dc_augment(x, torch.Generator().manual_seed(5))
    c = dc_augment(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)  # the input is not modified in place, the output differs
    assert torch.equal(x, _batch())


def test_crop_is_an_integer_shift_filled_with_the_channel_mean():
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    out = dc_augment(x, torch.Generator().manual_seed(0), crop=4, strategies=("crop",))
    mean = x.mean().item()
    for image in out[:, 0]:
        # every pixel is either the square's value, the background, or the padding mean
        values = set(round(v, 5) for v in image.flatten().tolist())
        assert values <= {0.0, 1.0, round(mean, 5)}
        assert (image == 1.0).sum().item() == 64  # the square is shifted, not cut
        ys, xs = (image == 1.0).nonzero(as_tuple=True)
        assert 6 <= ys.min().item() <= 14 and 6 <= xs.min().item() <= 14


def test_transforms_give_hand_computed_pixels():
    x = torch.arange(16.0).view(1, 4, 4)
    # crop: window (top 1, left 3) of x padded by 2 with the mean 7.5: a shift of (+1, -1)
    shifted = dc_crop(x, 1, 3, 2, [7.5])
    assert shifted[0].tolist() == [
        [7.5, 7.5, 7.5, 7.5],
        [1.0, 2.0, 3.0, 7.5],
        [5.0, 6.0, 7.0, 7.5],
        [9.0, 10.0, 11.0, 7.5],
    ]
    # scale to 2 x 6 (nearest: rows 0, 2; columns 0, 0, 1, 2, 2, 3), placed at (2, 0) in a 6 x 6
    # zero square, the 4 x 4 at (1, 1) kept
    assert dc_scale(x, 2, 6)[0].tolist() == [
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 2.0, 2.0],
        [8.0, 9.0, 10.0, 10.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
    # rotate by 90 degrees: the spline through whole pixels gives numpy's rot90 back
    assert torch.allclose(
        dc_rotate(x, 90, 0.0), torch.from_numpy(np.rot90(x.numpy(), 1, (1, 2)).copy()), atol=1e-4
    )
    # 45 degrees: the 28 x 28 image grows to 40 x 40 and the corners of its centre are the fill
    corners = dc_rotate(torch.zeros(1, 28, 28), 45, -0.25)[0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert torch.allclose(corners, torch.full((4,), -0.25))


def test_draws_have_the_reference_distributions():
    """100,000 draws against the exact probabilities of the reference's numpy calls
    (chi-square goodness of fit): strategy and crop offset uniform, angle uniform on [-45, 45),
    scaled size int(28 u) with u uniform on [0.8, 1.2): 22 and 33 with 0.6 / 11.2, 23-32 with
    1 / 11.2 each."""
    n = 100_000
    draws = dc_draws(n, 28, torch.Generator().manual_seed(0), 4, 0.2, 45, 3)
    sizes = np.array(draws.sizes).ravel()
    cases = [
        (np.array(draws.choice), np.arange(3), np.full(3, 1 / 3)),
        (np.array(draws.offsets).ravel(), np.arange(8), np.full(8, 1 / 8)),
        (np.array(draws.angles), np.arange(-45, 45), np.full(90, 1 / 90)),
        (sizes, np.arange(22, 34), np.array([0.6] + [1.0] * 10 + [0.6]) / 11.2),
    ]
    for values, support, probabilities in cases:
        assert set(np.unique(values)) == set(support)
        observed = np.array([(values == v).sum() for v in support])
        assert stats.chisquare(observed, probabilities * len(values)).pvalue > 1e-3


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown DC augmentation 'flip'"):
        dc_augment(_batch(), torch.Generator(), strategies=("crop", "flip"))


def test_rotate_and_scale_keep_the_shape_and_change_the_image():
    x = _batch()
    for strategy in ("rotate", "scale"):
        out = dc_augment(x, torch.Generator().manual_seed(1), strategies=(strategy,))
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert (out - x).abs().mean() > 0.05


def test_test_augmentation_needs_dc_and_goes_by_blocks_of_the_reference_test_batch(mnist):
    """``augment_test`` (kghandour/dd3d ``epoch`` augments its test batches of 256): 600 test
    images are augmented as blocks of 256, 256 and 88; stacked networks each get their own
    draws, the same as when tested alone."""
    import dataclasses

    from bench.core.errors import ConfigError
    from bench.evaluation.batched import NetworkStack, test_accuracy_many
    from bench.evaluation.evaluate import EvalProtocol, test_accuracy, test_augmenter
    from bench.evaluation.networks import build_network

    with pytest.raises(ConfigError, match="augment_test"):
        EvalProtocol(augment_test=True)
    protocol = EvalProtocol(augmentation="dc", augment_test=True)
    assert test_augmenter(EvalProtocol(augmentation="dc"), 0) is None
    _, test = mnist
    small = dataclasses.replace(test, images=test.images[:600], labels=test.labels[:600])
    net = build_network("ConvNet", 1, 10, (28, 28), 0)
    sizes = []
    augment = test_augmenter(protocol, 0)
    test_accuracy(
        net, small, 1000, torch.device("cpu"), lambda x: sizes.append(len(x)) or augment(x)
    )
    assert sizes == [256, 256, 88]
    nets = [build_network("ConvNet", 1, 10, (28, 28), s) for s in (1, 2)]
    alone = [
        test_accuracy(n, small, 1000, torch.device("cpu"), test_augmenter(protocol, s))
        for n, s in zip(nets, (1, 2), strict=True)
    ]
    augments = [test_augmenter(protocol, s) for s in (1, 2)]
    stacked = test_accuracy_many(NetworkStack(nets), small, 500, torch.device("cpu"), augments)
    assert stacked == pytest.approx(alone, abs=0.5)
    seen = []
    augment = test_augmenter(protocol, 1)
    test_accuracy(
        nets[0], small, 1000, torch.device("cpu"), lambda x: seen.append(augment(x)) or seen[-1]
    )
    # the network sees augmented test images: a different measurement from the plain test set
    assert not torch.equal(seen[0], small.images[:256])
