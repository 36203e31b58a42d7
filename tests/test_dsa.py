"""Differentiable siamese augmentation (bench/dsa.py) and its use in the shared evaluation."""

from __future__ import annotations

import pytest
import torch

from bench.core.errors import ConfigError
from bench.data.dsa import OPS, DSADraws, DSAParams, dsa_augment
from bench.data.real import load_card
from bench.data.synthetic import SyntheticSet
from bench.evaluation.batched import train_many
from bench.evaluation.evaluate import EvalProtocol, train_on_synthetic
from bench.evaluation.schedule import training_batches

CPU = torch.device("cpu")
ALL = "color_crop_cutout_flip_scale_rotate"


def _batch(b: int = 16, c: int = 3, h: int = 16, w: int = 16) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("strategy", [*OPS, ALL])
def test_shape_dtype_and_input_are_kept(strategy):
    x = _batch(c=3, h=12, w=10)
    out = dsa_augment(x, _gen(1), strategy)
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(x, _batch(c=3, h=12, w=10))  # not modified in place
    assert not torch.equal(out, x)


@pytest.mark.parametrize("strategy", [*OPS, ALL])
def test_gradient_reaches_the_images(strategy):
    x = _batch().requires_grad_(True)
    (dsa_augment(x, _gen(2), strategy) * torch.randn(x.shape, generator=_gen(3))).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_same_seed_same_output_other_seed_other_output():
    x = _batch()
    for strategy in [*OPS, ALL]:
        a = dsa_augment(x, _gen(5), strategy)
        assert torch.equal(a, dsa_augment(x, _gen(5), strategy))
        assert not torch.equal(a, dsa_augment(x, _gen(6), strategy))


def test_the_global_rng_is_neither_used_nor_advanced():
    x = _batch()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = dsa_augment(x, _gen(7))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    assert torch.equal(a, dsa_augment(x, _gen(7)))


def test_one_strategy_part_per_call_and_every_part_gets_drawn():
    x = _batch()
    seen = set()
    for seed in range(40):
        out = dsa_augment(x, _gen(seed), ALL)
        # the first draw picks the part; its transforms on the rest of the stream give the output
        g = _gen(seed)
        part = ALL.split("_")[int(torch.randint(6, (1,), generator=g))]
        y = x
        for op in OPS[part]:
            y = op(y, DSADraws(g), DSAParams())
        assert torch.equal(out, y)
        seen.add(part)
    assert seen == set(OPS)


def test_flip_mirrors_some_images_exactly_and_keeps_the_others():
    x = _batch(b=64)
    out = dsa_augment(x, _gen(0), "flip")
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert (flipped | kept).all()
    assert 10 < int(flipped.sum()) < 54  # probability 0.5 per image
    none = dsa_augment(x, _gen(0), "flip", DSAParams(prob_flip=0.0))
    assert torch.equal(none, x)
    every = dsa_augment(x, _gen(0), "flip", DSAParams(prob_flip=1.0))
    assert torch.equal(every, x.flip(3))


def test_cutout_zeroes_one_rectangle_per_image():
    x = torch.ones(32, 2, 16, 16)
    out = dsa_augment(x, _gen(0), "cutout")
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(out[:, 0], out[:, 1])  # the same mask for every channel
    for image in out[:, 0]:
        rows, cols = (image == 0).nonzero(as_tuple=True)
        assert len(rows) > 0
        h = int(rows.max() - rows.min()) + 1
        w = int(cols.max() - cols.min()) + 1
        assert h <= 8 and w <= 8 and len(rows) == h * w  # a clipped 8 x 8 rectangle
    # not clipped at the border at least once: the full 8 x 8 (ratio_cutout 0.5 of 16)
    assert (out[:, 0] == 0).sum(dim=(1, 2)).max() == 64


def test_crop_is_an_integer_shift_with_zero_fill():
    x = torch.zeros(32, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a 4 x 4 square the shift (at most 2 pixels) never cuts
    out = dsa_augment(x, _gen(0), "crop")
    shifts = set()
    for image in out[:, 0]:
        assert set(image.unique().tolist()) <= {0.0, 1.0} and image.sum() == 16
        rows, cols = image.nonzero(as_tuple=True)
        shifts.add((int(rows.min()) - 6, int(cols.min()) - 6))
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in shifts) and len(shifts) > 5


def test_color_transforms_follow_their_formulas():
    x = _batch(b=64)
    params = DSAParams()
    mean_c = x.mean(dim=1, keepdim=True)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    g = DSADraws(_gen(4))
    (bright,) = OPS["color"][:1]
    out = bright(x, g, params)
    delta = (out - x).flatten(1)
    # brightness: one offset per image in [-0.5, 0.5), not the same for all images
    assert torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-6)
    assert delta.abs().max() <= 0.5 and delta[:, 0].std() > 0.1
    saturation, contrast = OPS["color"][1:]
    factor = ((saturation(x, g, params) - mean_c) / (x - mean_c)).flatten(1)
    assert ((factor.median(dim=1).values >= 0) & (factor.median(dim=1).values <= 2)).all()
    factor = ((contrast(x, g, params) - mean) / (x - mean)).flatten(1).median(dim=1).values
    assert ((factor >= 0.5) & (factor <= 1.5)).all()
    out = dsa_augment(x, _gen(0), "color")
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_scale_and_rotate_keep_the_centre_and_change_the_image():
    x = torch.zeros(8, 1, 17, 17)
    x[:, :, 8, 8] = 1.0  # the centre pixel stays put under both (align_corners=True)
    for strategy in ("scale", "rotate"):
        out = dsa_augment(x, _gen(0), strategy)
        assert torch.allclose(out[:, :, 8, 8], torch.ones(8, 1), atol=1e-5)
    y = _batch()
    for strategy in ("scale", "rotate"):
        assert (dsa_augment(y, _gen(0), strategy) - y).abs().mean() > 0.05


def test_none_returns_the_input_and_unknown_parts_raise():
    x = _batch()
    assert dsa_augment(x, _gen(0), "none") is x
    assert dsa_augment(x, _gen(0), "") is x
    with pytest.raises(ValueError, match="known: color, crop, cutout, flip, scale, rotate"):
        dsa_augment(x, _gen(0), "color_jitter")
    with pytest.raises(ValueError):
        DSAParams(aug_mode="X")  # type: ignore[arg-type]


def test_multiple_mode_applies_every_part():
    x = _batch()
    out = dsa_augment(x, _gen(0), "flip_cutout", DSAParams(aug_mode="M"))
    assert (out == 0).any() and out.shape == x.shape


def test_protocol_dsa_augments_the_training_batches():
    images = _batch(b=12, c=3, h=8, w=8)
    labels = torch.arange(12) % 3
    plain = EvalProtocol(batch_train=5)
    dsa = EvalProtocol(batch_train=5, augmentation="dsa")
    assert dsa.dsa_strategy == ALL
    a = list(training_batches(images, labels, plain, _gen(0), CPU))
    b = list(training_batches(images, labels, dsa, _gen(0), CPU))
    assert [len(y) for _, y in b] == [5, 5, 2]
    # the same permutation (drawn first), then augmented images
    assert all(torch.equal(ya, yb) for (_, ya), (_, yb) in zip(a, b, strict=True))
    assert all(not torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b, strict=True))
    with pytest.raises(ConfigError, match="dsa_strategy"):
        EvalProtocol(augmentation="dsa", dsa_strategy="color_jitter")


def test_stacked_networks_under_dsa_equal_the_ones_trained_alone():
    card = load_card("mnist")
    g = _gen(0)
    images = torch.randn(card.num_classes, card.channels, *card.image_size, generator=g)
    synset = SyntheticSet(
        images=images,
        labels=torch.arange(card.num_classes),
        method="noise",
        dataset=card.name,
        ipc=1,
        seed=0,
    )
    protocol = EvalProtocol(epochs=0, augmentation="dsa", batch_train=5)
    seeds = [5, 6]
    stack = train_many("ConvNet", synset, card, protocol, seeds, CPU)
    for m, seed in enumerate(seeds):
        alone = dict(
            train_on_synthetic("ConvNet", synset, card, protocol, seed, CPU).named_parameters()
        )
        mine = torch.cat([stack.params[name][m].detach().flatten() for name in alone])
        theirs = torch.cat([p.detach().flatten() for p in alone.values()])
        assert float((mine - theirs).norm() / theirs.norm()) < 1e-4


def test_siamese_draws_give_every_image_and_every_batch_of_one_seed_the_same_transform():
    """DSA's matching (DC's ``DiffAugment`` with ``seed != -1``): a real and a synthetic batch
    augmented from one seed get one transform, whatever their sizes."""
    x = _batch(b=16)
    for seed in range(12):
        whole = dsa_augment(x, DSADraws.siamese(seed), ALL)
        part = dsa_augment(x[:3], DSADraws.siamese(seed), ALL)
        assert torch.allclose(whole[:3], part, atol=1e-6)
        same = dsa_augment(x[:1].expand(4, -1, -1, -1), DSADraws.siamese(seed), ALL)
        assert torch.allclose(same, same[:1].expand_as(same), atol=1e-6)


def test_siamese_draws_reseed_before_each_draw_from_the_next_integer():
    """``set_seed_DiffAug``: the part is drawn right after seeding with ``seed``, the flip
    after seeding with ``seed + 1`` (hand-computed from fresh generators)."""
    x = _batch(b=4)
    for seed in range(20):
        expected_flip = torch.rand(1, generator=torch.Generator().manual_seed(seed + 1)) < 0.5
        out = dsa_augment(x, DSADraws.siamese(seed), "flip")
        assert torch.equal(out, x.flip(3) if expected_flip else x)
        part = int(torch.randint(2, (1,), generator=torch.Generator().manual_seed(seed)))
        out = dsa_augment(x, DSADraws.siamese(seed), "flip_crop")
        if part == 0:
            assert torch.equal(out, x.flip(3) if expected_flip else x)
