"""Freed host memory is kept for reuse instead of being handed back to the kernel.

glibc's ``malloc`` serves large blocks (128 KiB and up, a threshold it raises only as blocks
are freed) with fresh ``mmap``s and returns them to the kernel on ``free``, so every tensor of a
forward or backward pass (a ConvNet-3 activation of 256 MNIST images is 128 MiB) is backed by
new pages that the kernel must fault in and zero. On the 2-core AMD EPYC that cost half of a
DC outer iteration's CPU time (system time 31 s of 82 s over 4 iterations). With the thresholds
below, blocks up to ``MMAP_THRESHOLD`` come from the heap and up to ``TRIM_THRESHOLD`` of freed
heap stays mapped, so later passes reuse pages already faulted in.
"""

from __future__ import annotations

import ctypes
import ctypes.util

MMAP_THRESHOLD = 256 * 2**20
"""bytes: blocks below this come from the heap, not their own ``mmap``"""
TRIM_THRESHOLD = 1024 * 2**20
"""bytes: freed memory at the top of the heap kept mapped before ``malloc`` trims it"""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)


def keep_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` for this process (``mallopt``,
    which also turns off glibc's dynamic threshold). Returns whether both were set; False where
    the C library is not glibc (musl, macOS), which then keeps its own behaviour. Call it once,
    early: blocks allocated before keep their ``mmap``s."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
