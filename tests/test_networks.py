"""The evaluation networks of DC's Table 2 (reference: VICO-UoE/DatasetCondensation@53f63a6
``networks.py``, ``utils.get_network``) and ``build_network``'s seeding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.evaluation.networks import NETWORKS, build_network

# (channels, image size): MNIST-like and CIFAR-like inputs.
MNIST = (1, (28, 28))
CIFAR = (3, (32, 32))
CASES = {"mnist": MNIST, "cifar": CIFAR}

# Parameter counts for 10 classes, checked against the reference code's networks built by
# ``get_network`` (same counts, and bit-identical initial parameters for the same seed).
REFERENCE_PARAMETERS = {
    ("ConvNet", "mnist"): 317_706,
    ("ConvNet", "cifar"): 320_010,
    ("MLP", "mnist"): 118_282,
    ("MLP", "cifar"): 411_146,
    ("LeNet", "mnist"): 61_706,
    ("LeNet", "cifar"): 62_006,
    ("AlexNet", "mnist"): 1_865_802,
    ("AlexNet", "cifar"): 1_872_202,
    ("VGG11", "mnist"): 9_229_962,
    ("VGG11", "cifar"): 9_231_114,
    ("ResNet18", "mnist"): 11_172_810,
    ("ResNet18", "cifar"): 11_173_962,
}


def test_all_table_2_networks_are_known_convnet_first():
    assert NETWORKS[0] == "ConvNet"
    assert set(NETWORKS) == {"ConvNet", "MLP", "LeNet", "AlexNet", "VGG11", "ResNet18"}
    assert len(NETWORKS) == len(set(NETWORKS))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", NETWORKS)
def test_logits_embedding_and_finite_gradients(name, case):
    channels, image_size = CASES[case]
    net = build_network(name, channels, 10, image_size, seed=0)
    assert sum(p.numel() for p in net.parameters()) == REFERENCE_PARAMETERS[name, case]

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, channels, *image_size, generator=g)
    logits = net(x)
    assert logits.shape == (2, 10)

    features = net.embed(x)
    assert isinstance(net.classifier, nn.Linear)
    assert features.shape == (2, net.classifier.in_features)
    # the linear head applied to the embedding is the whole forward pass
    torch.testing.assert_close(net.classifier(features), logits)

    F.cross_entropy(logits, torch.tensor([3, 7])).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert net.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NETWORKS)
def test_seed_fixes_the_parameters_and_leaves_the_global_rng_alone(name):
    channels, image_size = MNIST
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_network(name, channels, 10, image_size, seed=0).state_dict()
    b = build_network(name, channels, 10, image_size, seed=0).state_dict()
    c = build_network(name, channels, 10, image_size, seed=1).state_dict()
    assert torch.equal(torch.get_rng_state(), before)

    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def test_unknown_network_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown network 'VGG16'") as info:
        build_network("VGG16", 3, 10, (32, 32), seed=0)
    for name in NETWORKS:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["LeNet", "AlexNet", "ResNet18"])
def test_too_small_inputs_are_refused(name):
    with pytest.raises(ValueError, match="too small"):
        build_network(name, 3, 10, (4, 4), seed=0)
