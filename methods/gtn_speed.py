"""``python -m bench speed gtn-gm`` (also gtn-ift, gtn-unrolled): cost of the three ways of
training a generative teaching network (``methods/gtn.py``), side by side, at the same
generator and learner sizes.

For every variant (``gm``, ``ift``, ``unrolled``) and every number of learner steps per
generator update (``--inner-steps``: GM's ``inner_loop``, IFT's and unrolled's
``inner_steps``) this runs a few iterations (a fresh learner and its generator update(s)) on
MNIST-shaped data (1x28x28, 10 classes, ipc 10: the paper's batch of 100) in a fresh process;
the values of the data do not change the cost. It reports:

- seconds per iteration and per generator update (GM makes ``outer_loop`` updates per
  iteration, 2 here instead of the paper's 10; the others one), median over the timed
  iterations after one warm-up;
- peak memory: CUDA's ``max_memory_allocated`` on a GPU, else the growth of the process's
  peak resident set size (a fresh process per case, since that high-water mark never falls);
- peak autograd memory: the most bytes held at once by tensors saved for backward
  (``SavedTensorMeter``), which is deterministic and the same on every device: it grows with
  the unrolled steps and not with IFT's.

Results are printed and written as JSON to ``<out>/gtn-<commit>.json``.
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

VARIANTS = ("gm", "ift", "unrolled")


class SavedTensorMeter:
    """Context manager that tracks the bytes held by tensors autograd saves for backward
    (``torch.autograd.graph.saved_tensors_hooks``): ``live`` now, ``peak`` the maximum since
    entering. A saved tensor counts from its forward until its graph is freed; tensors saved
    twice count twice (an upper bound of the memory a graph pins)."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def _pack(self, tensor: torch.Tensor):
        return _Saved(tensor, self)

    def __enter__(self) -> SavedTensorMeter:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _Saved.unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Saved:
    """A saved tensor and its share of the meter; released when autograd drops it."""

    __slots__ = ("tensor", "nbytes", "meter")

    def __init__(self, tensor: torch.Tensor, meter: SavedTensorMeter) -> None:
        self.tensor, self.meter = tensor, meter
        self.nbytes = tensor.numel() * tensor.element_size()
        meter.live += self.nbytes
        meter.peak = max(meter.peak, meter.live)

    def unpack(self) -> torch.Tensor:
        return self.tensor

    def __del__(self) -> None:
        self.meter.live -= self.nbytes


def variant_config(variant: str, inner_steps: int, **overrides):
    """The GTN config of ``variant`` with ``inner_steps`` learner steps per generator update
    (GM: ``inner_loop``; 2 generator updates per iteration, not 10) and no generator
    selection."""
    from distillbench_methods.gtn import GTNGMConfig, GTNIFTConfig, GTNUnrolledConfig

    if variant == "gm":  # two updates per iteration suffice for the cost of one
        overrides = {"outer_loop": 2, **overrides}
        return GTNGMConfig(inner_loop=inner_steps, select_every=0, **overrides)
    if variant == "ift":
        return GTNIFTConfig(
            inner_steps=inner_steps, inner_tolerance=0.0, select_every=0, **overrides
        )
    if variant == "unrolled":
        return GTNUnrolledConfig(inner_steps=inner_steps, select_every=0, **overrides)
    raise ValueError(f"unknown GTN variant {variant!r}; known: {', '.join(VARIANTS)}")


def mnist_shaped_real(images: int = 12000):
    """A RealSet of ``images`` random MNIST-shaped images (cost measurements only)."""
    from bench.api import RealSet, load_card

    generator = torch.Generator().manual_seed(0)
    return RealSet(
        torch.randn(images, 1, 28, 28, generator=generator),
        torch.arange(images) % 10,
        load_card("mnist"),
    )


def _one_case(variant: str, inner_steps: int, iterations: int, device: str) -> dict:
    """Time and memory of one variant (run in a fresh process)."""
    from distillbench_methods.gtn import GTNTraining

    dev = torch.device(device)
    config = variant_config(variant, inner_steps)
    training = GTNTraining(config, mnist_shaped_real().to(dev), 10, 0, dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    before = peak_memory_mb(dev)
    times, autograd_peak = [], 0
    for it in range(iterations + 1):
        began = time.perf_counter()
        with SavedTensorMeter() as meter:
            training.iteration(it, it)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - began)
        autograd_peak = max(autograd_peak, meter.peak)
    updates = getattr(config, "outer_loop", 1)
    per_iteration = statistics.median(times[1:])
    return {
        "variant": variant,
        "inner_steps": inner_steps,
        "generator_updates_per_iteration": updates,
        "seconds_per_iteration": per_iteration,
        "seconds_per_generator_update": per_iteration / updates,
        "peak_memory_mb": peak_memory_mb(dev) - before,
        "peak_autograd_mb": autograd_peak / 2**20,
    }


def run_gtn_benchmark(
    inner_steps: tuple[int, ...], iterations: int, device: torch.device, out: Path
) -> Path:
    """Measure every (variant, inner_steps), print the table, write the JSON; returns its
    path."""
    context = multiprocessing.get_context("spawn")
    results = []
    for steps in inner_steps:
        for variant in VARIANTS:
            with context.Pool(1, maxtasksperchild=1) as pool:
                result = pool.apply(_one_case, (variant, steps, iterations, str(device)))
            results.append(result)
            print(
                f"{variant}, {steps} learner steps: {result['seconds_per_iteration']:.2f} "
                f"s/iteration, peak {result['peak_memory_mb']:.0f} MB, autograd peak "
                f"{result['peak_autograd_mb']:.0f} MB",
                flush=True,
            )
    rows = [
        [
            r["variant"],
            r["inner_steps"],
            f"{r['seconds_per_iteration']:.2f}",
            f"{r['seconds_per_generator_update']:.2f}",
            f"{r['peak_memory_mb']:.0f}",
            f"{r['peak_autograd_mb']:.1f}",
        ]
        for r in results
    ]
    headers = [
        "variant",
        "learner steps",
        "s / iteration",
        "s / generator update",
        "peak MB",
        "peak autograd MB",
    ]
    print(
        f"\nGTN iteration (generator 64/32/16, ConvNet-3 learner, 100 images of 1x28x28, "
        f"256 real images per batch), {hardware(device)}"
    )
    print(tabulate(rows, headers=headers))
    return write_record(out, "gtn", device, iterations_timed=iterations, results=results)


@dataclass(frozen=True)
class GTNSpeedOptions:
    """What ``python -m bench speed gtn-gm`` times (``run_gtn_benchmark``)."""

    inner_steps: tuple[int, ...] = option(
        (5, 10, 20), "learner steps per generator update (the paper's is 10)", nargs="+", type=int
    )
    iterations: int = option(3, "iterations timed per variant, after a warm-up")


def main(argv: list[str]) -> int:
    """``python -m bench speed gtn-gm|gtn-ift|gtn-unrolled [options]``: the three variants side by
    side (``run_gtn_benchmark``)."""
    options, output = parse_options(
        "python -m bench speed gtn-gm", argv, GTNSpeedOptions, SpeedOutput
    )
    run_gtn_benchmark(
        options.inner_steps, options.iterations, pick_device(output.device), output.out
    )
    return 0
