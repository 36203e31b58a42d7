"""``python -m bench speed mtt``: time and peak memory of one MTT iteration per ``syn_steps``.

MTT back-propagates through all ``syn_steps`` unrolled student steps, so its memory grows with
them; ``batch_syn`` (synthetic images per step) is the reference's way to trade result for
memory. For every (ipc, syn_steps, batch_syn) this runs a few iterations of
``methods.mtt.trajectory_matching_loss`` + backward on CIFAR-10-shaped data (ConvNet-3, 3x32x32,
10 classes, DSA) in a fresh process, from random synthetic images and a random expert segment
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
from pathlib import Path

import torch
from tabulate import tabulate

from bench.api import hardware, peak_memory_mb, write_record


def _one_case(ipc: int, syn_steps: int, batch_syn: int | None, iterations: int, device: str):
    """Time and peak memory of MTT iterations for one case (run in a fresh process)."""
    from bench.api import build_network
    from methods.mtt import MTTConfig, trajectory_matching_loss

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


def main(argv: list[str]) -> int:
    """``python -m bench speed mtt [options]`` (``run_mtt_benchmark``)."""
    import argparse

    from bench.api import pick_device

    p = argparse.ArgumentParser(prog="python -m bench speed mtt")
    p.add_argument("--ipc", type=int, nargs="+", default=[1], help="ipc values (default: 1)")
    p.add_argument(
        "--syn-steps",
        type=int,
        nargs="+",
        default=[10, 20, 30, 50],
        help="unrolled student steps per iteration (default: 10 20 30 50)",
    )
    p.add_argument(
        "--batch-syn",
        type=int,
        nargs="*",
        default=[],
        help="smaller synthetic batches per step, besides all images (default: none)",
    )
    p.add_argument("--iterations", type=int, default=3, help="iterations timed per case")
    p.add_argument("--out", default="bench-results", help="folder for the JSON results")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    run_mtt_benchmark(
        tuple(args.ipc),
        tuple(args.syn_steps),
        (None, *args.batch_syn),
        args.iterations,
        pick_device(args.device),
        Path(args.out),
    )
    return 0
