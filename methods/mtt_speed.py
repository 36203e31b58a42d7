"""``python -m bench speed mtt``: time and peak memory of one MTT iteration per ``syn_steps``.

MTT back-propagates through all ``syn_steps`` unrolled student steps, so its memory grows with
them; ``batch_syn`` (synthetic images per step) is the reference's way to trade result for
memory. For every (ipc, syn_steps, batch_syn) this runs a few iterations of
``mtt.trajectory_matching_loss`` + backward on CIFAR-10-shaped data (ConvNet-3, 3x32x32, 10
classes, DSA) in a fresh process, from random synthetic images and a random expert segment
(the cost does not depend on the values), and reports:

- seconds per iteration (median of the timed iterations after one warm-up);
- peak memory of an iteration: CUDA's ``max_memory_allocated`` on a GPU, else the growth of the
  process's peak resident set size over its size before the first iteration (a fresh process
  per case, since the high-water mark never falls).

Results are printed and written as JSON to ``<out>/mtt-<commit>.json``.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from bench.api import (
    SpeedOutput,
    hardware,
    option,
    parse_options,
    peak_memory_mb,
    pick_device,
    write_record,
)


def _one_case(ipc: int, syn_steps: int, batch_syn: int | None, iterations: int, device: str):
    """Time and peak memory of MTT iterations for one case (run in a fresh process)."""
    from bench.api import build_network
    from distillbench_methods.mtt import MTTConfig, trajectory_matching_loss

    dev = torch.device(device)
    net = build_network("ConvNet", 3, 10, (32, 32), 0).to(dev)
    size = sum(p.numel() for p in net.parameters())
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(size, generator=generator).to(dev) * 0.05
    target = start + torch.randn(size, generator=generator).to(dev) * 0.01
    images = torch.randn(10 * ipc, 3, 32, 32, generator=generator).to(dev).requires_grad_(True)
    labels = torch.arange(10).repeat_interleave(ipc).to(dev)
    lr = torch.tensor(0.01, device=dev, requires_grad=True)
    config = MTTConfig(
        syn_steps=syn_steps, batch_syn=batch_syn, dsa_strategy="color_crop_cutout_flip_scale_rotate"
    )
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)  # the peak restarts at what is allocated now
    before = peak_memory_mb(dev)
    times = []
    for _ in range(iterations + 1):
        began = time.perf_counter()
        loss = trajectory_matching_loss(net, start, target, images, labels, lr, config, generator)
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - began)
    return {
        "ipc": ipc,
        "syn_steps": syn_steps,
        "batch_syn": batch_syn or 10 * ipc,
        "seconds_per_iteration": statistics.median(times[1:]),
        "peak_memory_mb": peak_memory_mb(dev) - before,
    }


def run_mtt_benchmark(
    ipcs: tuple[int, ...],
    syn_steps: tuple[int, ...],
    batch_syn: tuple[int | None, ...],
    iterations: int,
    device: torch.device,
    out: Path,
) -> Path:
    """Measure every (ipc, syn_steps, batch_syn), print the table, write the JSON; returns its
    path. ``batch_syn`` None means all ``10 * ipc`` images per step (the reference default)."""
    context = multiprocessing.get_context("spawn")
    results = []
    for ipc in ipcs:
        for steps in syn_steps:
            for batch in batch_syn:
                if batch is not None and batch >= 10 * ipc:
                    continue  # the same as all images
                with context.Pool(1, maxtasksperchild=1) as pool:
                    result = pool.apply(_one_case, (ipc, steps, batch, iterations, str(device)))
                results.append(result)
                print(
                    f"ipc {ipc}, syn_steps {steps}, batch_syn {result['batch_syn']}: "
                    f"{result['seconds_per_iteration']:.2f} s/iteration, "
                    f"peak {result['peak_memory_mb']:.0f} MB"
                )
    rows = [
        [r["ipc"], r["syn_steps"], r["batch_syn"], f"{r['seconds_per_iteration']:.2f}"]
        + [f"{r['peak_memory_mb']:.0f}"]
        for r in results
    ]
    headers = ["ipc", "syn_steps", "batch_syn", "s / iteration", "peak MB per iteration"]
    print(f"\nMTT iteration, ConvNet-3 on 3x32x32, {hardware(device)}")
    print(tabulate(rows, headers=headers))
    return write_record(out, "mtt", device, iterations_timed=iterations, results=results)


@dataclass(frozen=True)
class MTTSpeedOptions:
    """What ``python -m bench speed mtt`` times (``run_mtt_benchmark``)."""

    ipc: tuple[int, ...] = option((1,), "ipc values", nargs="+", type=int)
    syn_steps: tuple[int, ...] = option(
        (10, 20, 30, 50), "unrolled student steps per iteration", nargs="+", type=int
    )
    batch_syn: tuple[int, ...] = option(
        (), "smaller synthetic batches per step, besides all images", nargs="*", type=int
    )
    iterations: int = option(3, "iterations timed per case")


def main(argv: list[str]) -> int:
    """``python -m bench speed mtt [options]`` (``run_mtt_benchmark``)."""
    options, output = parse_options("python -m bench speed mtt", argv, MTTSpeedOptions, SpeedOutput)
    run_mtt_benchmark(
        options.ipc,
        options.syn_steps,
        (None, *options.batch_syn),
        options.iterations,
        pick_device(output.device),
        output.out,
    )
    return 0
