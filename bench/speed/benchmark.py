"""What every speed benchmark shares: peak memory, the measured GEMM peak and the JSON record
written beside a speed claim (``<out>/<name>-<commit>.json``). The benchmarks themselves live
next to their methods (``methods/*_speed.py``) and run as ``python -m bench speed <method>``.
A speed goal belongs in a benchmark, not in a timed unit test.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.core.hashing import write_atomic
from bench.core.provenance import git_commit, hardware, package_versions
from bench.run.options import option


@dataclass(frozen=True)
class SpeedOutput:
    """Where a speed benchmark writes its record (``write_record``), and the device it times:
    the options every ``python -m bench speed METHOD`` shares."""

    out: Path = option(Path("bench-results"), "folder for the JSON results")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")


def peak_memory_mb(device: torch.device) -> float:
    """CUDA's ``max_memory_allocated`` on a GPU, else the process's peak resident set size
    (a high-water mark), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_record(out: Path, name: str, device: torch.device, **fields) -> Path:
    """Write ``<out>/<name>-<commit>.json`` with the commit, hardware, package versions and
    ``fields``; print and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    path = out / f"{name}-{commit[:12]}.json"
    record = {
        "commit": commit,
        "hardware": hardware(device),
        "versions": package_versions(),
        **fields,
    }
    write_atomic(path, json.dumps(record, indent=2))
    print(f"wrote {path}")
    return path


def gemm_rates_gflops(device, size: int = 4096) -> dict[str, float]:
    """fp32 rates in GFLOP/s of one ``size x size`` by ``size x size`` product (best of 3 each;
    ``size`` a square number, the convolution's image being ``sqrt(size)`` pixels a side)
    through ``torch.matmul`` (MKL or cuBLAS) and as a channels_last 1x1 convolution (oneDNN or
    cuDNN, the libraries the networks' convolutions run on). On the 2-core AMD EPYC the
    convolution ran at about twice MKL's matmul rate, and the networks' 3x3 convolutions above
    MKL's rate, so the matmul alone is not this machine's limit: the GEMM peak a speed-up is
    judged against is the faster of the two (``../shared/notes/performance.md``)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    side = int(size**0.5)
    image = a.reshape(1, size, side, side).contiguous(memory_format=torch.channels_last)
    kernel = b.reshape(size, size, 1, 1).contiguous(memory_format=torch.channels_last)
    products = {"matmul": lambda: a @ b, "conv1x1": lambda: F.conv2d(image, kernel)}
    rates = {}
    for name, product in products.items():
        product()  # warm-up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            product()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        rates[name] = 2 * size**3 / best / 1e9
    return rates
