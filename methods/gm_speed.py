"""``python -m bench speed gm``: speed and memory of the distillation loop and the evaluation.

For each ipc it measures, on real MNIST with the paper's per-iteration settings (256 real
images per class, the reference's outer/inner loops):

- seconds per outer iteration of gradient matching (median over the timed iterations) with the
  plain loop (the defaults: the reference's per-class matching in float32) and, side by side on
  the same seeds, with each fast variant (``VARIANTS``): its ratio to the plain loop and the
  relative difference of its synthetic set from the plain loop's after the timed iterations
  (float summation order for the speed-only variants; bf16 changes the numbers); and each one's
  FLOPs per second (the plain loop's FLOPs: the same maths) as a fraction of this device's fp32
  GEMM peak (``gemm_rates_gflops``: the physical limit of any speed-up of the same maths);
- evaluation epochs per second of training one ConvNet-3 on the ``10 * ipc`` synthetic images
  with DC augmentation, and the seconds and fraction of the GEMM peak of one pass over the
  10,000 test images, plain (the float32 NCHW pass over 1000-image batches the suite ran
  before), channels_last (a channels_last copy with torch's ``GroupNorm``, the default until
  instance norm ran on NHWC rows), default (the shared evaluation's) and compiled
  (``eval.compile_test``), with the number of test images whose predicted class differs from
  the plain pass's;
- side by side on the same synthetic set and seeds: ``networks`` ConvNet-3s trained one after
  another against the same networks trained together (``eval.networks_per_batch``), as
  network-epochs per second, their ratio, and the largest relative difference between the two
  ways' final parameters (float summation order only);
- peak memory: CUDA's ``max_memory_allocated`` on a GPU, else the process's peak resident set
  size (a high-water mark, so it can only grow from one case to the next).

Nothing timed runs under ``FlopCounterMode`` (its per-operator dispatch costs 3-6 %): FLOPs are
counted in separate untimed passes. Every comparison is interleaved (A, B, A, B, ... over
``--repeats`` rounds; medians and their spread are reported), and the GEMM peak and the load
average are recorded before and after, so figures taken on a shared machine can be judged.
Results are printed and written as JSON to ``<out>/gm-<commit>.json`` to compare across commits.
A speed goal belongs here, not in a timed unit test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import torch
from tabulate import tabulate

from bench.api import (
    DataRoot,
    EvalProtocol,
    SpeedOutput,
    SyntheticSet,
    UserError,
    channels_last_copy,
    gemm_rates_gflops,
    git_commit,
    hardware,
    load_card,
    load_real,
    option,
    package_versions,
    parse_options,
    peak_memory_mb,
    pick_device,
    predictions,
    speed_only_fields,
    test_batch,
    train_on_synthetic,
    write_atomic,
)
from distillbench_methods.gm import GMConfig, distill, loops_for

VARIANTS: dict[str, dict] = {
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "batched": {"matching": "batched"},
    "bf16": {"precision": "bf16"},
}
"""fast variants of the distillation loop (``GMConfig`` fields) compared with the plain loop"""


def _flops(fn) -> float:
    """FLOPs of ``fn()`` counted by ``FlopCounterMode`` in an untimed pass (its per-operator
    dispatch costs 3-6 % of a DC iteration, so nothing timed runs under it)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def _time_distillation(
    real, ipc: int, iterations: int, device, config: GMConfig
) -> tuple[float, torch.Tensor]:
    """(median seconds per outer iteration, final synthetic images) of ``iterations`` outer
    iterations of DC at ``config`` (seed 0), without FLOP counting."""
    stamps = [time.perf_counter()]
    synset = distill(
        real,
        ipc,
        dataclasses.replace(config, iterations=iterations),
        seed=0,
        device=device,
        after_iteration=lambda *_: stamps.append(time.perf_counter()),
    )
    seconds = statistics.median(b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True))
    return seconds, synset.images


def _spread(values: list[float]) -> dict:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _compare_distillation(real, ipc: int, iterations: int, device, variants, repeats: int) -> dict:
    """The plain loop and each variant on the same seeds, interleaved (plain, v1, v2, ...,
    ``repeats`` rounds): median seconds per outer iteration (and their spread over the rounds),
    ratio to plain, and the relative difference of the synthetic set from the plain loop's.
    FLOPs per outer iteration come from one separate untimed iteration of the plain loop."""
    flops = _flops(lambda: distill(real, ipc, GMConfig(iterations=1), seed=0, device=device))
    names = ["plain", *variants]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    images: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name in names:
            config = GMConfig(**VARIANTS.get(name, {}))
            s, images[name] = _time_distillation(real, ipc, iterations, device, config)
            seconds[name].append(s)
    plain_s = statistics.median(seconds["plain"])
    compared = {}
    for name in variants:
        s = statistics.median(seconds[name])
        difference = (images[name] - images["plain"]).norm() / images["plain"].norm()
        compared[name] = {
            "seconds_per_outer_iteration": s,
            "seconds_spread": _spread(seconds[name]),
            "speedup": plain_s / s,
            "relative_set_difference": float(difference),
        }
    return {
        "seconds_per_outer_iteration": plain_s,
        "seconds_spread": _spread(seconds["plain"]),
        "flops": flops,
        "variants": compared,
    }


def _timed(fn, device):
    """``(fn(), seconds)``, waiting for queued CUDA work before the clock stops."""
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def _noise_set(card, ipc: int) -> SyntheticSet:
    """``ipc`` Gaussian-noise images per class ``[K * ipc, C, H, W]`` (seed 0): a synthetic set
    of the right size to time the evaluation on."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(
        card.num_classes * ipc, card.channels, *card.image_size, generator=generator
    )
    labels = torch.arange(card.num_classes).repeat_interleave(ipc)
    return SyntheticSet(
        images=images, labels=labels, method="bench", dataset=card.name, ipc=ipc, seed=0
    )


@torch.inference_mode()
def _plain_predictions(net, images: torch.Tensor, device) -> torch.Tensor:
    """Predicted classes ``[N]`` of the plain float32 pass the suite ran before
    ``evaluate.predictions`` chose its layout and batch per device: ``net`` as it is (NCHW),
    1000 images per forward pass (the reference's ``utils.epoch`` uses 256-image NCHW batches)."""
    net.eval()
    return torch.cat([net(x.to(device)).argmax(dim=1) for x in images.split(1000)])


@torch.inference_mode()
def _channels_last_predictions(net, images: torch.Tensor, device) -> torch.Tensor:
    """Predicted classes ``[N]`` of the default pass as it was before its instance norm ran on
    NHWC rows (``bench.evaluation.cpu_inference``): a channels_last copy of ``net`` with torch's
    ``GroupNorm``, ``test_batch`` images per forward pass."""
    model, layout = channels_last_copy(net), torch.channels_last
    batches = images.split(test_batch(None, device))
    return torch.cat(
        [model(x.to(device).contiguous(memory_format=layout)).argmax(1) for x in batches]
    )


TEST_PASSES = ("plain", "channels_last", "default", "compiled")
"""test passes timed by ``_time_evaluation``: the plain pass the suite ran before, a
channels_last copy with torch's ``GroupNorm``, the shared evaluation's default
(``predictions``) and its compiled one (``eval.compile_test``)"""


def _time_evaluation(test, ipc: int, epochs: int, device, repeats: int) -> dict:
    """Training epochs per second of one ConvNet-3 on a noise set of ``10 * ipc`` images, and
    the seconds of each of ``TEST_PASSES`` over the real test set, interleaved over ``repeats``
    rounds after an untimed first compiled pass (its compile time reported apart), with their
    predictions compared image by image with the plain pass's and their FLOPs counted in an
    untimed pass over 100 images."""
    card = test.card
    synset = _noise_set(card, ipc)
    protocol = EvalProtocol(augmentation="dc", epochs=epochs - 1)  # trains epochs - 1 + 1
    net, train_s = _timed(
        lambda: train_on_synthetic("ConvNet", synset, card, protocol, 0, device), device
    )
    per_image = _flops(lambda: _plain_predictions(net, test.images[:100], device)) / 100
    flops = per_image * len(test.labels)
    plain, _ = _timed(lambda: _plain_predictions(net, test.images, device), device)
    _, compile_s = _timed(lambda: predictions(net, test.images[:32], None, device, True), device)
    passes = {
        "plain": lambda: _plain_predictions(net, test.images, device),
        "channels_last": lambda: _channels_last_predictions(net, test.images, device),
        "default": lambda: predictions(net, test.images, None, device),
        "compiled": lambda: predictions(net, test.images, None, device, fast=True),
    }
    seconds: dict[str, list[float]] = {name: [] for name in TEST_PASSES}
    differ = dict.fromkeys(TEST_PASSES, 0)
    for _ in range(repeats):
        for name in TEST_PASSES:
            predicted, s = _timed(passes[name], device)
            seconds[name].append(s)
            differ[name] = max(differ[name], int((predicted != plain).sum()))
    return {
        "eval_epochs_per_s": epochs / train_s,
        "test_pass_gflop": flops / 1e9,
        "test_pass_batch": test_batch(None, device),
        "test_pass_s": {name: statistics.median(values) for name, values in seconds.items()},
        "test_pass_spread": {name: _spread(values) for name, values in seconds.items()},
        "test_pass_compile_s": compile_s,
        "test_pass_predictions_differing_from_plain": differ,
    }


def _flat_parameters(net, stacked: dict, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``net``'s parameters and network ``m``'s of a stack, each as one flat vector."""
    names = [name for name, _ in net.named_parameters()]
    one = torch.cat([p.detach().flatten() for p in net.parameters()])
    return one, torch.cat([stacked[name][m].detach().flatten() for name in names])


def _compare_batched_evaluation(
    card, ipc: int, epochs: int, networks: int, device, repeats: int
) -> tuple[float, float, float]:
    """(sequential, batched) network-epochs per second (medians of ``repeats`` interleaved
    rounds) for ``networks`` ConvNet-3s on the same noise synthetic set and seeds, and the
    largest relative parameter difference between them."""
    from bench.api import train_many

    synset = _noise_set(card, ipc)
    protocol = EvalProtocol(augmentation="dc", epochs=epochs - 1)
    seeds = list(range(networks))
    sequential_s, batched_s = [], []
    for _ in range(repeats):
        alone, s = _timed(
            lambda: [
                train_on_synthetic("ConvNet", synset, card, protocol, s, device) for s in seeds
            ],
            device,
        )
        sequential_s.append(s)
        stack, s = _timed(
            lambda: train_many("ConvNet", synset, card, protocol, seeds, device), device
        )
        batched_s.append(s)
    gaps = []
    for m, net in enumerate(alone):
        one, stacked = _flat_parameters(net, stack.params, m)
        gaps.append(float((stacked - one).norm() / one.norm()))
    work = networks * epochs
    return work / statistics.median(sequential_s), work / statistics.median(batched_s), max(gaps)


def run_benchmark(
    data_root: Path,
    out: Path,
    device_name: str,
    ipcs: tuple[int, ...] = (1,),
    iterations: int = 3,
    epochs: int = 20,
    networks: int = 20,
    variants: tuple[str, ...] | None = None,
    repeats: int = 3,
) -> dict:
    """Measure and report (see module docstring); returns the JSON-ready results. Every
    comparison is interleaved over ``repeats`` rounds (medians and spread reported); the GEMM
    peak is measured before and after each ipc's measurements (median used, spread reported), and
    the load average is recorded, since other processes on the machine slow every figure.

    Raises:
        UserError: an unknown variant (``variants``: names of ``VARIANTS``; None: all), or
            ``repeats`` < 1.
    """
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    variants = tuple(VARIANTS) if variants is None else variants
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants {' '.join(unknown)}: unknown; known: {', '.join(VARIANTS)}")
    device = pick_device(device_name)
    card = load_card("mnist")
    real = load_real(card, data_root, "train").to(device)
    test = load_real(card, data_root, "test")
    rates = [gemm_rates_gflops(device)]
    load = [os.getloadavg()[0]]
    rows, variant_rows, results, measured_ipcs = [], [], [], []
    for ipc in ipcs:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        distillation = _compare_distillation(real, ipc, iterations, device, variants, repeats)
        evaluation = _time_evaluation(test, ipc, epochs, device, repeats)
        sequential, batched, gap = _compare_batched_evaluation(
            card, ipc, max(2, epochs // 4), networks, device, repeats
        )
        rates.append(gemm_rates_gflops(device))
        load.append(os.getloadavg()[0])
        measured_ipcs.append((ipc, distillation, evaluation, sequential, batched, gap))
    peaks = [max(r.values()) for r in rates]
    peak = statistics.median(peaks)  # the GEMM peak: the faster of matmul and 1x1 convolution
    matmul_rate = statistics.median(r["matmul"] for r in rates)
    for ipc, distillation, evaluation, sequential, batched, gap in measured_ipcs:
        seconds_per_it = distillation["seconds_per_outer_iteration"]
        flops_per_it = distillation["flops"]
        of_peak = flops_per_it / seconds_per_it / 1e9 / peak
        for measured in distillation["variants"].values():  # the same maths: the plain FLOPs
            measured["fraction_of_gemm_peak"] = (
                flops_per_it / measured["seconds_per_outer_iteration"] / 1e9 / peak
            )
        epochs_per_s, test_s = evaluation["eval_epochs_per_s"], evaluation["test_pass_s"]
        test_gflop = evaluation["test_pass_gflop"]
        evaluation["test_pass_fraction_of_gemm_peak"] = {
            name: test_gflop / s / peak for name, s in test_s.items()
        }
        evaluation["test_pass_fraction_of_torch_matmul_rate"] = {
            name: test_gflop / s / matmul_rate for name, s in test_s.items()
        }
        outer, inner = loops_for(ipc, GMConfig())
        result = {
            "ipc": ipc,
            "loops": [outer, inner],
            "outer_iterations_per_s": 1 / seconds_per_it,
            "seconds_per_outer_iteration": seconds_per_it,
            "gflop_per_outer_iteration": flops_per_it / 1e9,
            "seconds_spread": distillation["seconds_spread"],
            "distillation_fraction_of_gemm_peak": of_peak,
            "distillation_variants": distillation["variants"],
            **evaluation,
            "eval_networks": networks,
            "sequential_network_epochs_per_s": sequential,
            "batched_network_epochs_per_s": batched,
            "batched_speedup": batched / sequential,
            "batched_max_relative_parameter_difference": gap,
            "peak_memory_mb": peak_memory_mb(device),
        }
        results.append(result)
        rows.append(
            [
                ipc,
                f"{outer}/{inner}",
                f"{seconds_per_it:.2f} ({100 * of_peak:.0f}% of peak)",
                f"{1 / seconds_per_it:.3f}",
                f"{epochs_per_s:.1f}",
                " / ".join(
                    f"{test_s[name]:.1f} ({100 * fraction:.0f}%, "
                    f"{evaluation['test_pass_predictions_differing_from_plain'][name]} differ)"
                    for name, fraction in evaluation["test_pass_fraction_of_gemm_peak"].items()
                ),
                f"{sequential:.1f}",
                f"{batched:.1f}",
                f"{batched / sequential:.2f}x",
                f"{gap:.1e}",
                f"{result['peak_memory_mb']:.0f}",
            ]
        )
        for name, measured in distillation["variants"].items():
            variant_rows.append(
                [
                    ipc,
                    name,
                    " ".join(f"method.{k}={v}" for k, v in VARIANTS[name].items()),
                    "yes"
                    if set(VARIANTS[name]) <= speed_only_fields(GMConfig)
                    else "no: off protocol",
                    f"{measured['seconds_per_outer_iteration']:.2f} "
                    f"({100 * measured['fraction_of_gemm_peak']:.0f}% of peak)",
                    f"{measured['speedup']:.2f}x",
                    f"{measured['relative_set_difference']:.1e}",
                ]
            )
    report = {
        "method": "gm",
        "dataset": card.name,
        "commit": git_commit(),
        "hardware": hardware(device),
        "versions": package_versions(),
        "gemm_peak_gflops": peak,
        "torch_matmul_gflops": matmul_rate,
        "gemm_rates_gflops_measured": rates,
        "load_average_1min": load,
        "repeats": repeats,
        "timed_outer_iterations": iterations,
        "timed_eval_epochs": epochs,
        "results": results,
    }
    print(
        f"DC gradient matching on MNIST, paper settings (256 real images/class); "
        f"{hardware(device)}; fp32 GEMM peak {peak:.0f} GFLOP/s (measured "
        f"{min(peaks):.0f}-{max(peaks):.0f}; torch.matmul alone {matmul_rate:.0f}); "
        f"1-min load average {min(load):.1f}-{max(load):.1f}; "
        f"medians of {repeats} interleaved rounds, FLOPs counted in separate untimed passes"
    )
    print(
        tabulate(
            rows,
            headers=[
                "ipc",
                "loops",
                "plain s/outer it",
                "outer it/s",
                "eval epochs/s",
                f"test pass s (% of peak): {' / '.join(TEST_PASSES)}",
                f"{networks} nets: sequential net-epochs/s",
                "batched net-epochs/s",
                "speed-up",
                "max param diff",
                "peak MB",
            ],
        )
    )
    if variant_rows:
        print("\nfast variants of the distillation loop against the plain loop, same seeds:")
        print(
            tabulate(
                variant_rows,
                headers=[
                    "ipc",
                    "variant",
                    "setting",
                    "same maths",
                    "s/outer it",
                    "speed-up",
                    "set difference (rel.)",
                ],
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gm-{report['commit'][:12]}.json"
    write_atomic(path, json.dumps(report, indent=2))
    print(f"written to {path}")
    return report


@dataclasses.dataclass(frozen=True)
class GMSpeedOptions:
    """What ``python -m bench speed gm`` times (``run_benchmark``)."""

    ipc: tuple[int, ...] = option(
        (1,), "ipc values (an ipc-10 outer iteration takes minutes on a CPU)", nargs="+", type=int
    )
    variants: tuple[str, ...] = option(
        tuple(VARIANTS),
        "fast variants of the distillation loop timed against the plain one",
        nargs="*",
        choices=list(VARIANTS),
        metavar="VARIANT",
    )
    iterations: int = option(3, "outer iterations timed per ipc")
    repeats: int = option(3, "interleaved rounds of every comparison (medians reported)")
    epochs: int = option(20, "evaluation epochs timed per ipc")
    networks: int = option(20, "networks trained one after another vs together (DC's per set)")


def main(argv: list[str]) -> int:
    """``python -m bench speed gm [options]``: parse the options and run ``run_benchmark``."""
    options, data, output = parse_options(
        "python -m bench speed gm", argv, GMSpeedOptions, DataRoot, SpeedOutput
    )
    run_benchmark(
        data.data_root,
        output.out,
        output.device,
        ipcs=options.ipc,
        iterations=options.iterations,
        epochs=options.epochs,
        networks=options.networks,
        variants=options.variants,
        repeats=options.repeats,
    )
    return 0
