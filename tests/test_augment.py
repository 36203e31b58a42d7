"""DC's crop/scale/rotate augmentation, batched and seeded."""

import pytest
import torch

from bench.data.augment import dc_augment


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
