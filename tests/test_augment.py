"""DC's crop/scale/rotate augmentation, batched and seeded."""

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
