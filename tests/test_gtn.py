"""Generative teaching networks (methods/gtn.py): the generator, one step of each way of training
it, the Neumann-series hypergradient, autograd memory, resume, config errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from bench.core.errors import ConfigError
from bench.core.seeds import derive_seed
from distillbench_methods.gtn import (
    Generator,
    GTNConfig,
    GTNGMConfig,
    GTNIFTConfig,
    GTNTraining,
    GTNUnrolledConfig,
    balanced_labels,
    build_generator,
    distill,
    fresh_learner,
    generator_step,
    gm_matching_loss,
    ift_hypergradient,
    learner_step,
    neumann_inverse_hvp,
    sample,
    stream_from_set,
)
from distillbench_methods.gtn_speed import SavedTensorMeter, mnist_shaped_real, variant_config


@pytest.fixture(scope="module")
def small_mnist(mnist):
    """The first 3000 MNIST training images: 1000 for validation, 2000 to train on."""
    train, _ = mnist
    return dataclasses.replace(train, images=train.images[:3000], labels=train.labels[:3000])


def _parameters(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


@pytest.mark.parametrize("upsample", [False, True])
def test_generator_makes_requested_images_and_labels(upsample):
    config = GTNConfig(upsample=upsample)
    generator = Generator(config, channels=1, num_classes=10, size=28)
    labels = torch.tensor([3, 3, 0, 9, 5])
    images = sample(generator, labels, torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28)
    assert images.abs().max() < 1  # tanh output
    # conditional: the same noise with other labels gives other images
    generator.eval()
    noise = torch.rand(2, config.noise_dim, generator=torch.Generator().manual_seed(1))
    a = generator(noise, torch.tensor([0, 0]))
    b = generator(noise, torch.tensor([7, 7]))
    assert not torch.allclose(a, b)


def test_sampled_synthetic_set_has_shape_labels_and_generator(small_mnist):
    from distillbench_methods.gtn import sample_synthetic_set

    generator = build_generator(GTNConfig(), small_mnist, 0)
    synset = sample_synthetic_set(generator, small_mnist, ipc=4, seed=5, method="gtn-gm")
    assert synset.images.shape == (40, 1, 28, 28)
    assert synset.labels.tolist() == [c for c in range(10) for _ in range(4)]
    synset.validate(small_mnist.card)
    assert set(synset.generator_weights()) == set(generator.state_dict())
    again = sample_synthetic_set(generator, small_mnist, ipc=4, seed=5, method="gtn-gm")
    assert torch.equal(synset.images, again.images)  # seeded noise


def test_gm_step_changes_generator_and_lowers_matching_loss(small_mnist):
    config = GTNGMConfig()
    generator = build_generator(config, small_mnist, 0)
    learner, _ = fresh_learner(config, small_mnist, 1, torch.device("cpu"))
    images, labels = small_mnist.images[1000:], small_mnist.labels[1000:]
    real = [images[labels == c][:32] for c in range(10)]
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr_generator)

    def loss():  # a fixed batch: the same noise and real images every time
        return gm_matching_loss(generator, learner, real, 10, torch.Generator().manual_seed(0))

    before, weights = loss(), _parameters(generator)
    optimizer.zero_grad()
    before.backward()
    generator_step(generator, optimizer, config.grad_clip)
    assert not torch.equal(weights, _parameters(generator))
    assert loss().item() < before.item() - 1e-3


def _ift_objective(generator, config, real, learner_seed):
    """The learner's real loss after ``inner_steps`` steps on a fixed generated batch."""
    learner, optimizer = fresh_learner(config, real, learner_seed, torch.device("cpu"))
    labels = balanced_labels(10, 10, torch.device("cpu"))
    generator.eval()
    images = sample(generator, labels, torch.Generator().manual_seed(0), grad=False)
    for _ in range(config.inner_steps):
        learner_step(learner, optimizer, images, labels)
    x, y = real.images[1000:1512], real.labels[1000:1512]
    return learner, images, labels, x, y


def test_ift_step_changes_generator_and_lowers_validation_loss(small_mnist):
    config = GTNIFTConfig(inner_steps=20)
    generator = build_generator(config, small_mnist, 0)
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    learner, _, labels, x, y = _ift_objective(generator, config, small_mnist, 1)
    before = F.cross_entropy(learner(x), y).item()
    generator.train()
    noise_images = sample(generator, labels, torch.Generator().manual_seed(0))
    grads = ift_hypergradient(
        F.cross_entropy(learner(noise_images), labels),
        F.cross_entropy(learner(x), y),
        list(learner.parameters()),
        list(generator.parameters()),
        config.neumann_lr,
        config.neumann_terms,
    )
    weights = _parameters(generator)
    optimizer.zero_grad()
    for p, g in zip(generator.parameters(), grads, strict=True):
        p.grad = g
    generator_step(generator, optimizer, config.grad_clip)
    assert not torch.equal(weights, _parameters(generator))
    learner, *_ = _ift_objective(generator, config, small_mnist, 1)
    assert F.cross_entropy(learner(x), y).item() < before


def test_neumann_hypergradient_matches_exact_on_quadratic():
    """L_T(w, lam) = 1/2 w^T A w - lam^T B w, L_V(w) = 1/2 |w - t|^2: w* = A^-1 B^T lam and the
    exact hypergradient is B A^-1 (w* - t). alpha * (Neumann result) must agree within 1e-3
    relative: with A's eigenvalues in [0.5, 1.5] and alpha = 0.5 the truncation error of 40
    terms is at most 0.75^41 ~ 7e-6."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.linspace(0.5, 1.5, 6, dtype=torch.float64)) @ q.T
    b = torch.randn(3, 6, generator=g, dtype=torch.float64)
    lam = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, generator=g, dtype=torch.float64)
    w_star = torch.linalg.solve(a, b.T @ lam.detach())
    exact = b @ torch.linalg.solve(a, w_star - t)

    w = w_star.clone().requires_grad_(True)
    train_loss = 0.5 * w @ a @ w - lam @ (b @ w)
    val_loss = 0.5 * ((w - t) ** 2).sum()
    alpha, terms = 0.5, 40
    (hyper,) = ift_hypergradient(train_loss, val_loss, [w], [lam], alpha, terms)
    assert torch.allclose(alpha * hyper, exact, rtol=1e-3, atol=1e-9)
    # too few terms is visibly worse: the test can fail
    (rough,) = ift_hypergradient(
        0.5 * w @ a @ w - lam @ (b @ w), 0.5 * ((w - t) ** 2).sum(), [w], [lam], alpha, 1
    )
    assert not torch.allclose(alpha * rough, exact, rtol=1e-3)


def test_neumann_series_diverges_from_inverse_only_by_truncation():
    h = torch.diag(torch.tensor([1.0, 0.25], dtype=torch.float64))
    v = [torch.tensor([1.0, 1.0], dtype=torch.float64)]
    p = neumann_inverse_hvp(v, lambda u: [h @ u[0]], alpha=1.0, terms=60)
    assert torch.allclose(p[0], torch.tensor([1.0, 4.0], dtype=torch.float64), rtol=1e-6)


def _autograd_peak(variant: str, steps: int, real) -> int:
    config = variant_config(variant, steps, batch_real=32, validation_images=100)
    training = GTNTraining(config, real, 5, 0, torch.device("cpu"))
    with SavedTensorMeter() as meter:
        training.iteration(0, 0)
    return meter.peak


def test_unrolled_memory_grows_with_steps_and_ift_memory_does_not():
    real = mnist_shaped_real(600)
    unrolled = [_autograd_peak("unrolled", s, real) for s in (2, 6)]
    ift = [_autograd_peak("ift", s, real) for s in (2, 6)]
    assert unrolled[1] > 2.5 * unrolled[0]
    assert ift[1] == ift[0]
    assert ift[1] < unrolled[1]


def test_resume_continues_exactly(small_mnist):
    config = GTNGMConfig(
        iterations=3,
        outer_loop=1,
        inner_loop=1,
        batch_real=16,
        validation_images=1000,
        select_every=2,
        select_epochs=2,
    )
    states = {}

    def keep(it, metrics, state):
        states[it] = state()

    full = distill(small_mnist, 2, config, 7, torch.device("cpu"), after_iteration=keep)
    resumed = distill(small_mnist, 2, config, 7, torch.device("cpu"), resume=states[0])
    assert torch.equal(full.images, resumed.images)
    assert full.method == "gtn-gm" and full.generator_weights()


def test_config_errors(small_mnist):
    with pytest.raises(ConfigError, match="method.learner"):
        GTNIFTConfig(learner="Transformer")
    with pytest.raises(ConfigError, match="neumann_terms"):
        GTNIFTConfig(neumann_terms=0)
    with pytest.raises(ConfigError, match="validation_images"):
        GTNTraining(GTNGMConfig(validation_images=3000), small_mnist, 1, 0, torch.device("cpu"))
    with pytest.raises(ConfigError, match="no GTN variant"):
        GTNTraining(GTNConfig(), small_mnist, 1, 0, torch.device("cpu"))


def _linear_first_layer(generator: Generator) -> Generator:
    """Every first-layer pre-activation positive (noise in [0, 1), weights >= 0, bias 5), so
    LeakyReLU is the identity there and the one-hot label adds one constant per feature."""
    with torch.no_grad():
        generator.fc1.weight.abs_()
        generator.fc1.bias.fill_(5.0)
    return generator.train()


def test_class_batches_erase_the_label_as_the_reference_does():
    """Reference quirk (gmpc_train -> prepare_data(teacher, None, class_nm), train mode): a
    batch of one class is normalised by its own BatchNorm statistics, and BN(x + c) = BN(x)
    for a constant c, so with a linear first layer the label changes nothing. In a balanced
    batch of all classes it does."""
    generator = _linear_first_layer(Generator(GTNConfig(), 1, 10, 28))
    noise = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    as_zero = generator(noise, torch.zeros(5, dtype=torch.int64))
    as_seven = generator(noise, torch.full((5,), 7))
    torch.testing.assert_close(as_zero, as_seven, atol=1e-4, rtol=0)  # float32 rounding
    mixed = generator(torch.cat([noise, noise]), torch.tensor([0] * 5 + [7] * 5))
    assert (mixed[:5] - mixed[5:]).abs().max() > 1e-2


def test_gm_loss_draws_one_batch_per_class_or_one_balanced_batch():
    """class_batches=True calls the generator once per class with that class's labels (the
    reference); False once, with all classes."""
    generator = Generator(GTNConfig(), 1, 3, 28)
    learner = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))
    seen = []
    generator.register_forward_hook(lambda m, args, out: seen.append(args[1].tolist()))
    real = [torch.randn(4, 1, 28, 28) for _ in range(3)]
    gm_matching_loss(generator, learner, real, 2, torch.Generator().manual_seed(0), True)
    assert seen == [[0, 0], [1, 1], [2, 2]]
    seen.clear()
    gm_matching_loss(generator, learner, real, 2, torch.Generator().manual_seed(0), False)
    assert seen == [[0, 0, 1, 1, 2, 2]]


def test_unrolled_keeps_the_last_generator(small_mnist):
    """Reference higher-gtn: `best_acc = acc` is commented out, so the dumped teacher is the
    last one; GTNUnrolledConfig's default select_every=0 does the same."""
    config = GTNUnrolledConfig(iterations=2, inner_steps=1, batch_real=16, validation_images=1000)
    assert config.select_every == 0
    states = {}
    synset = distill(
        small_mnist,
        1,
        config,
        3,
        torch.device("cpu"),
        after_iteration=lambda it, metrics, state: states.setdefault(it, state()),
    )
    last = states[1]["generator"]
    for name, value in synset.generator_weights().items():
        assert torch.equal(value, last[name]), name


def test_stream_from_set_draws_fresh_eval_mode_batches(small_mnist):
    """The reference's TeacherIterDataset: each epoch a new batch of the stored generator, in
    eval mode, of the set's size and labels; the first draw with the set's noise seed is the
    set itself."""
    config = GTNUnrolledConfig(iterations=1, inner_steps=1, batch_real=16, validation_images=1000)
    synset = distill(small_mnist, 2, config, 3, torch.device("cpu"))
    stream = stream_from_set(synset, config, torch.device("cpu"))
    rng = torch.Generator().manual_seed(0)
    (a, ya), (b, _) = stream(rng), stream(rng)
    assert a.shape == synset.images.shape and torch.equal(ya, synset.labels)
    assert not torch.allclose(a, b)
    replay = stream(torch.Generator().manual_seed(derive_seed(3, 4)))[0]  # gtn's "sample" stream
    torch.testing.assert_close(replay, synset.images)
