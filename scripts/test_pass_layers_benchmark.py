"""Where the CPU test pass spends its time, layer by layer: ConvNet-3 on MNIST-shaped images,
``CPU_TEST_BATCH`` images per forward pass, a channels_last copy with torch's ``GroupNorm``
against ``cpu_test_copy`` (instance norm on NHWC rows), interleaved over ``--rounds``.

    python scripts/test_pass_layers_benchmark.py [--images 10000] [--rounds 3]
        [--out leaderboards/benchmarks]

Each layer of ``features`` is timed as it runs (``time.perf_counter`` around each module, summed
over the pass), and each convolution's rate is given in GFLOP/s beside the GEMM peak measured
before and after (``gemm_rates_gflops``). Writes ``<out>/test-pass-layers-<commit>.json``
(``bench.speed.benchmark.write_record``) with every round's figures and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from tabulate import tabulate

from bench.core.memory import keep_freed_memory
from bench.core.paths import REPO_ROOT
from bench.evaluation.cpu_inference import channels_last_copy, cpu_test_copy, is_instance_norm
from bench.evaluation.evaluate import CPU_TEST_BATCH
from bench.evaluation.networks import build_network
from bench.speed.benchmark import gemm_rates_gflops, write_record

CPU = torch.device("cpu")


@torch.inference_mode()
def layer_seconds(model: torch.nn.Module, images: torch.Tensor) -> list[float]:
    """Seconds spent in each module of ``model.features`` over one pass of ``images``."""
    seconds = [0.0] * len(model.features)
    for x in images.split(CPU_TEST_BATCH):
        h = x.contiguous(memory_format=torch.channels_last)
        for i, layer in enumerate(model.features):
            start = time.perf_counter()
            h = layer(h)
            seconds[i] += time.perf_counter() - start
        model.classifier(h.flatten(1)).argmax(dim=1)
    return seconds


def conv_flops(model: torch.nn.Module, images: torch.Tensor) -> dict[int, float]:
    """Multiply-add FLOPs (2 per multiply-add) of each convolution of ``model.features`` over
    ``images``, from its output shape: ``2 * C_in * k * k`` per output element."""
    flops, h = {}, images[:1]
    with torch.inference_mode():
        for i, layer in enumerate(model.features):
            h = layer(h)
            if isinstance(layer, torch.nn.Conv2d):
                per_output = 2 * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
                flops[i] = per_output * h.numel() * len(images)
    return flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "leaderboards" / "benchmarks")
    args = parser.parse_args()
    keep_freed_memory()
    net = build_network("ConvNet", 1, 10, (28, 28), 0).eval()
    images = torch.randn(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    copies = {
        "torch GroupNorm": channels_last_copy(net),
        "cpu_test_copy": cpu_test_copy(net),
    }
    for model in copies.values():  # warm-up: oneDNN primitives, allocator
        layer_seconds(model, images[: 4 * CPU_TEST_BATCH])
    rates = [gemm_rates_gflops(CPU)]
    rounds: dict[str, list[list[float]]] = {name: [] for name in copies}
    for _ in range(args.rounds):
        for name, model in copies.items():
            rounds[name].append(layer_seconds(model, images))
    rates.append(gemm_rates_gflops(CPU))
    peak = statistics.median(max(r.values()) for r in rates)
    flops = conv_flops(net, images)
    names = [
        f"{i} {'instance norm' if is_instance_norm(layer) else type(layer).__name__}"
        for i, layer in enumerate(net.features)
    ]
    medians = {
        name: [statistics.median(r[i] for r in per_round) for i in range(len(names))]
        for name, per_round in rounds.items()
    }
    rows = []
    for i, layer in enumerate(names):
        row = [layer] + [f"{medians[name][i]:.3f}" for name in copies]
        if i in flops:
            row.append(f"{flops[i] / medians['cpu_test_copy'][i] / 1e9:.0f}")
        rows.append(row)
    rows.append(["total"] + [f"{sum(medians[name]):.3f}" for name in copies])
    print(
        f"seconds per layer over {args.images} images, {CPU_TEST_BATCH} per pass, medians of "
        f"{args.rounds} interleaved rounds; fp32 GEMM peak {peak:.0f} GFLOP/s"
    )
    print(tabulate(rows, headers=["layer", *copies, "conv GFLOP/s (cpu_test_copy)"]))
    write_record(
        args.out,
        "test-pass-layers",
        CPU,
        what="seconds per ConvNet-3 layer over one CPU test pass of MNIST-shaped images",
        images=args.images,
        batch=CPU_TEST_BATCH,
        layers=names,
        gemm_peak_gflops=peak,
        gemm_rates_gflops_measured=rates,
        conv_gflop={names[i]: f / 1e9 for i, f in flops.items()},
        median_seconds=medians,
        seconds=rounds,
    )


if __name__ == "__main__":
    main()
