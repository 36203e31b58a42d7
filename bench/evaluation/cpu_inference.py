"""The network copy that the test pass runs on a CPU: channels_last, instance norm on NHWC rows.

oneDNN's convolutions run fastest on channels_last (NHWC) tensors. PyTorch's CPU ``GroupNorm``
on such a tensor splits into two kernels (``aten/src/ATen/native/cpu/group_norm_kernel.cpp``,
``GroupNormKernelImplChannelsLastInternal``, torch 2.x): for feature maps of 1024 pixels or
more it streams over whole NHWC rows, but below that it gives each thread one (image, group)
and, for instance norm (one channel per group), walks that channel at a stride of C floats.
Over the 10,000 MNIST test images, ConvNet-3's second block (16 x 16) spent 1.13 s there
against 2.15 s in its convolution; ``ChannelsLastInstanceNorm`` computes such small maps on the
contiguous ``[N, H*W, C]`` view instead, in 0.41 s (2-core AMD EPYC,
``leaderboards/benchmarks/test-pass-layers-8da827d7f45f.json``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

STRIDED_BELOW_PIXELS = 1024
"""feature maps (H*W) below which torch's channels_last ``GroupNorm`` takes its strided kernel
(``feature_map_threshold`` in ``group_norm_kernel.cpp``); at or above it, torch's is faster"""


def is_instance_norm(module: nn.Module) -> bool:
    """Whether ``module`` is an affine ``GroupNorm(C, C)``: instance norm as the networks build it
    (``bench.evaluation.networks``, after the DC reference's ``nn.GroupNorm(C, C, affine=True)``,
    VICO-UoE/DatasetCondensation@53f63a6 ``networks.py``)."""
    return (
        isinstance(module, nn.GroupNorm)
        and module.num_groups == module.num_channels
        and module.affine
    )


class ChannelsLastInstanceNorm(nn.Module):
    """Instance norm with per-channel affine parameters, ``GroupNorm(C, C)``'s function, for
    inference on channels_last inputs.

    Input and output ``[N, C, H, W]`` float, channels_last. Maps of ``STRIDED_BELOW_PIXELS``
    pixels or more, and inputs of any other shape or layout, go to ``F.group_norm``; smaller
    ones are normalised on the ``[N, H*W, C]`` view of their memory in two passes (mean, then
    the mean squared deviation: the biased variance ``GroupNorm`` uses), so every reduction and
    elementwise step reads contiguous channel vectors. Equal to ``GroupNorm`` up to float
    summation order.

    Args:
        norm: the ``GroupNorm`` with ``num_groups == num_channels`` whose parameters (shared,
            not copied) and ``eps`` this module uses.

    Raises:
        ValueError: ``norm`` normalises groups of more than one channel.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        if not is_instance_norm(norm):
            raise ValueError("ChannelsLastInstanceNorm: needs an affine GroupNorm(C, C)")
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dim() != 4
            or x.shape[2] * x.shape[3] >= STRIDED_BELOW_PIXELS
            or not x.is_contiguous(memory_format=torch.channels_last)
        ):
            return F.group_norm(x, x.shape[1], self.weight, self.bias, self.eps)
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view: NHWC memory
        centred = rows - rows.mean(dim=1, keepdim=True)
        variance = centred.square().mean(dim=1, keepdim=True)
        centred.mul_(torch.rsqrt(variance + self.eps) * self.weight).add_(self.bias)
        return centred.view(n, h, w, c).permute(0, 3, 1, 2)


def channels_last_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode with its parameters channels_last (oneDNN's and cuDNN's
    native layout for convolutions); ``net`` itself is left as it is."""
    return copy.deepcopy(net).eval().to(memory_format=torch.channels_last)


def cpu_test_copy(net: nn.Module) -> nn.Module:
    """``channels_last_copy(net)`` with every affine ``GroupNorm(C, C)`` (``is_instance_norm``)
    replaced by a ``ChannelsLastInstanceNorm`` of the copy's parameters: the network the CPU
    test pass runs. ``net`` itself is left as it is."""
    model = channels_last_copy(net)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if is_instance_norm(child):
                setattr(parent, name, ChannelsLastInstanceNorm(child))
    return model
