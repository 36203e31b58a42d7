"""Batched evaluation trains exactly the networks the sequential evaluation trains."""

from __future__ import annotations

import pytest
import torch

from bench.core.seeds import derive_seed
from bench.data.real import RealSet, load_card
from bench.data.synthetic import SyntheticSet
from bench.evaluation import batched, evaluate
from bench.evaluation.batched import train_many
from bench.evaluation.evaluate import EvalProtocol, evaluate_synthetic_set, train_on_synthetic
from bench.evaluation.networks import NETWORKS, build_network

CPU = torch.device("cpu")


def noise_set(card, ipc: int = 1) -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(card.num_classes * ipc, card.channels, *card.image_size, generator=g)
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    return SyntheticSet(
        images=images, labels=labels, method="noise", dataset=card.name, ipc=ipc, seed=0
    )


def _flat(params) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in params])


# Every architecture for one augmented step; ConvNet for 3 epochs of 3 steps.
@pytest.mark.parametrize(
    "model, epochs, batch_train", [(m, 0, 10) for m in NETWORKS] + [("ConvNet", 2, 4)]
)
def test_each_stacked_network_equals_the_one_trained_alone(model, epochs, batch_train, monkeypatch):
    """Stacked against alone, relative to the network's training update (trained - initial).

    Measured on the AMD EPYC machine (issue 20): the update is 1.5-7 % of the parameters' norm;
    a wrong data order or augmentation draw changes the parameters by 2-8 % of their norm but
    by 115-145 % of the update; float summation order changes them by ~1e-6 of the update,
    except for rare networks where a ReLU or instance norm turns it into a discrete difference
    (ConvNet seed 5, 3 epochs: 6.4e-4 of the parameters' norm, 1e-2 of its update; the sequential
    path alone is deterministic run to run, but which network hits this varied between runs),
    which broke the earlier bound of 1e-4 of the parameters' norm. The bound, 5 % of the update,
    is 5x that worst case and checked below to stay far under a wrong draw."""
    card = load_card("cifar10")
    synset = noise_set(card)
    protocol = EvalProtocol(epochs=epochs, augmentation="dc", batch_train=batch_train)
    seeds = [5, 6, 7]
    stack = train_many(model, synset, card, protocol, seeds, CPU)
    bound = 0.05
    for m, seed in enumerate(seeds):
        alone = dict(
            train_on_synthetic(model, synset, card, protocol, seed, CPU).named_parameters()
        )
        initial = _flat(
            build_network(model, 3, 10, card.image_size, derive_seed(seed, 0)).parameters()
        )
        update = _flat(alone.values()) - initial
        mine = _flat(stack.params[name][m] for name in alone)
        gap = float((mine - _flat(alone.values())).norm() / update.norm())
        assert gap < bound, f"{model} network {m}: {gap:.2e} of its update"
    # a wrong data order / augmentation draw (same initialisation) is far outside the bound
    monkeypatch.setattr(evaluate, "derive_seed", lambda s, *k: derive_seed(s, *k) + (k == (1,)))
    wrong = _flat(train_on_synthetic(model, synset, card, protocol, seeds[-1], CPU).parameters())
    wrong_gap = float((wrong - _flat(alone.values())).norm() / update.norm())
    assert wrong_gap > 4 * bound, f"{model}: a wrong draw moved it by only {wrong_gap:.2e}"
    # the networks differ from each other: each has its own seed
    first = next(iter(stack.params.values()))
    assert not torch.allclose(first[0], first[1])


def _two_real_images_per_class(train: RealSet) -> SyntheticSet:
    """The first two training images of each class as a 20-image set."""
    picks = torch.cat([torch.nonzero(train.labels == c)[:2, 0] for c in range(10)])
    return SyntheticSet(
        images=train.images[picks],
        labels=train.labels[picks],
        method="real",
        dataset="mnist",
        ipc=2,
        seed=0,
    )


def test_batched_and_sequential_evaluation_give_the_same_accuracies(mnist):
    train, test = mnist
    card = test.card
    subset = RealSet(test.images[:1000], test.labels[:1000], card)
    synset = _two_real_images_per_class(train)
    sequential = EvalProtocol(num_eval=4, epochs=20, augmentation="dc")
    batched = EvalProtocol(num_eval=4, epochs=20, augmentation="dc", networks_per_batch=3)
    seq = evaluate_synthetic_set(synset, subset, sequential, 3, CPU)["ConvNet"]
    bat = evaluate_synthetic_set(synset, subset, batched, 3, CPU)["ConvNet"]
    assert len(bat) == 4 and len(set(seq)) > 1
    assert bat == pytest.approx(seq, abs=0.21)  # at most 2 of 1000 test images flip


def test_test_accuracy_many_matches_one_network_at_a_time(mnist):
    _, test = mnist
    card = test.card
    subset = RealSet(test.images[:500], test.labels[:500], card)
    protocol = EvalProtocol(epochs=1)
    stack = train_many("ConvNet", noise_set(card), card, protocol, [1, 2], CPU)
    accuracies = batched.test_accuracy_many(stack, subset, 128, CPU)
    alone = [
        evaluate.test_accuracy(
            train_on_synthetic("ConvNet", noise_set(card), card, protocol, s, CPU), subset, 128, CPU
        )
        for s in (1, 2)
    ]
    assert accuracies == pytest.approx(alone, abs=0.21)


def test_test_passes_predict_exactly_what_the_plain_float32_pass_predicts(mnist):
    """The default test pass (on a CPU: a channels_last copy, ``CPU_TEST_BATCH`` images at a
    time) and the compiled one, against the plain pass the suite ran before (the network as it
    is, NCHW, 1000 images at a time: written out here), on all 10,000 real MNIST test images:
    identical predicted classes, for a freshly initialised network and one trained on 20 real
    images (not approximately: no image flips); the network itself is left in its layout."""
    train, test = mnist
    card = test.card
    synset = _two_real_images_per_class(train)
    protocol = EvalProtocol(epochs=30, augmentation="dc")
    fresh = build_network("ConvNet", 1, 10, card.image_size, 11)
    trained = train_on_synthetic("ConvNet", synset, card, protocol, 3, CPU)
    for net in (fresh, trained):
        with torch.no_grad():
            plain = torch.cat([net.eval()(x).argmax(dim=1) for x in test.images.split(1000)])
        default = evaluate.predictions(net, test.images, None, CPU)
        assert torch.equal(default, plain), f"{int((default != plain).sum())} predictions differ"
        assert net.features[4].weight.is_contiguous()  # the copy was converted, not the network
        fast = evaluate.predictions(net, test.images, None, CPU, fast=True)
        assert torch.equal(fast, plain), f"{int((fast != plain).sum())} predictions differ"
    accuracy = evaluate.test_accuracy(trained, test, None, CPU)
    assert accuracy == 100.0 * int((plain == test.labels).sum()) / len(test.labels)
    assert accuracy > 30  # trained: well above the 10% of chance


def test_the_test_batch_is_cache_sized_on_a_cpu_and_large_elsewhere():
    assert evaluate.test_batch(None, CPU) == evaluate.CPU_TEST_BATCH == 32
    assert evaluate.test_batch(None, torch.device("cuda")) == evaluate.LARGE_TEST_BATCH
    assert evaluate.test_batch(500, CPU) == 500
