"""Freed memory is kept for reuse: repeated large tensors stop faulting in fresh pages."""

from __future__ import annotations

import subprocess
import sys

from bench.core.memory import keep_freed_memory

# 30 rounds of a 64 MiB tensor (16,384 pages) allocated, written and freed; prints the minor
# page faults of the last 20 rounds
CHURN = """
import resource, sys
import torch
from bench.core.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
faults = 0
for i in range(30):
    if i == 10:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20)  # 64 MiB, freed at once
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


def test_kept_memory_is_reused_instead_of_faulted_in_again():
    assert keep_freed_memory()  # glibc (Linux), as on every machine the suite is tested on
    default, kept = _faults("default"), _faults("keep")
    # glibc's default maps every 64 MiB block afresh: about 16,384 faults per round
    assert default > 20 * 10_000
    assert kept < default / 20
