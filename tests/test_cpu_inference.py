"""The CPU test-pass copy: instance norm on NHWC rows equals the textbook formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.evaluation import cpu_inference
from bench.evaluation.cpu_inference import (
    STRIDED_BELOW_PIXELS,
    ChannelsLastInstanceNorm,
    cpu_test_copy,
)
from bench.evaluation.networks import build_network


def textbook_instance_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float):
    """(x - mean) / sqrt(biased variance + eps) * weight + bias per image and channel, float64."""
    mean = x.mean(axis=(2, 3), keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=(2, 3), keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight[:, None, None] + bias[:, None, None]


# 16 x 16 and 8 x 8: the NHWC path; 32 x 32: torch's own kernel; 1 x 1: a single pixel.
@pytest.mark.parametrize("size", [16, 8, 32, 1])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_instance_norm_matches_the_formula_in_float64(size, layout):
    g = torch.Generator().manual_seed(size)
    norm = nn.GroupNorm(6, 6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6, generator=g))
        norm.bias.copy_(torch.randn(6, generator=g))
    x = (torch.randn(3, 6, size, size, generator=g) * 4 + 2).contiguous(memory_format=layout)
    with torch.inference_mode():
        out = ChannelsLastInstanceNorm(norm)(x)
    weight, bias = (p.detach().double().numpy() for p in (norm.weight, norm.bias))
    expected = textbook_instance_norm(x.double().numpy(), weight, bias, norm.eps)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=2e-5)
    assert out.is_contiguous(memory_format=layout)


def test_inputs_that_are_not_images_go_to_torch():
    norm = nn.GroupNorm(4, 4)
    x = torch.randn(2, 4, 9, generator=torch.Generator().manual_seed(0))  # [N, C, L]
    torch.testing.assert_close(ChannelsLastInstanceNorm(norm)(x), norm(x))


def test_small_channels_last_maps_take_the_nhwc_path_and_large_ones_torchs(monkeypatch):
    calls = []
    real_group_norm = cpu_inference.F.group_norm
    monkeypatch.setattr(
        cpu_inference.F, "group_norm", lambda *a, **k: calls.append(1) or real_group_norm(*a, **k)
    )
    norm = ChannelsLastInstanceNorm(nn.GroupNorm(4, 4))
    side = int(STRIDED_BELOW_PIXELS**0.5)  # 32: torch's fast kernel from here on
    for size, layout, expected in [
        (side // 2, torch.channels_last, 0),
        (side, torch.channels_last, 1),
        (side // 2, torch.contiguous_format, 1),
    ]:
        calls.clear()
        norm(torch.randn(2, 4, size, size).contiguous(memory_format=layout))
        assert len(calls) == expected, (size, layout)


def test_groups_of_several_channels_are_refused():
    with pytest.raises(ValueError, match="GroupNorm\\(C, C\\)"):
        ChannelsLastInstanceNorm(nn.GroupNorm(2, 4))


@pytest.mark.parametrize("name", ["ConvNet", "VGG11", "ResNet18"])
def test_the_copy_swaps_every_instance_norm_and_leaves_the_network_alone(name):
    net = build_network(name, 3, 10, (32, 32), 0).train()
    copy = cpu_test_copy(net)
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    swapped = [m for m in copy.modules() if isinstance(m, ChannelsLastInstanceNorm)]
    assert len(norms) == len(swapped) > 0
    assert not any(isinstance(m, nn.GroupNorm) for m in copy.modules())
    assert net.training and not copy.training
    assert all(p.is_contiguous() for p in net.parameters())
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = net.eval()(x)
        out = copy(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
