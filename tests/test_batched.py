"""Batched evaluation trains exactly the networks the sequential evaluation trains."""

from __future__ import annotations

import pytest
import torch

from bench.data.real import RealSet, load_card
from bench.data.synthetic import SyntheticSet
from bench.evaluation import batched, evaluate
from bench.evaluation.batched import train_many
from bench.evaluation.evaluate import EvalProtocol, evaluate_synthetic_set, train_on_synthetic
from bench.evaluation.networks import NETWORKS

CPU = torch.device("cpu")


def noise_set(card, ipc: int = 1) -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(card.num_classes * ipc, card.channels, *card.image_size, generator=g)
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    return SyntheticSet(images, labels, "noise", card.name, ipc, 0, "")


# Every architecture for one augmented step; ConvNet for 3 epochs of 3 steps. (Longer runs of
# VGG11/ResNet18 drift apart at the float level: instance norm over 1x1 or 2x2 feature maps
# amplifies summation-order differences, in sequential training just the same.)
@pytest.mark.parametrize(
    "model, epochs, batch_train", [(m, 0, 10) for m in NETWORKS] + [("ConvNet", 2, 4)]
)
def test_each_stacked_network_equals_the_one_trained_alone(model, epochs, batch_train):
    card = load_card("cifar10")
    synset = noise_set(card)
    protocol = EvalProtocol(epochs=epochs, augmentation="dc", batch_train=batch_train)
    seeds = [5, 6, 7]
    stack = train_many(model, synset, card, protocol, seeds, CPU)
    for m, seed in enumerate(seeds):
        alone = dict(
            train_on_synthetic(model, synset, card, protocol, seed, CPU).named_parameters()
        )
        mine = torch.cat([stack.params[name][m].flatten() for name in alone])
        theirs = torch.cat([p.flatten() for p in alone.values()])
        # relative to the parameter vector's norm: float-order noise is ~1e-6, while a wrong
        # seed, data order or augmentation draw changes the parameters by tens of percent
        gap = float((mine - theirs).norm() / theirs.norm())
        assert gap < 1e-4, f"{model} network {m}: relative difference {gap:.2e}"
    # the networks differ from each other: each has its own seed
    first = next(iter(stack.params.values()))
    assert not torch.allclose(first[0], first[1])


def test_batched_and_sequential_evaluation_give_the_same_accuracies(mnist):
    train, test = mnist
    card = test.card
    subset = RealSet(test.images[:1000], test.labels[:1000], card)
    picks = torch.cat([torch.nonzero(train.labels == c)[:2, 0] for c in range(10)])
    synset = SyntheticSet(train.images[picks], train.labels[picks], "real", "mnist", 2, 0, "")
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
