"""End-to-end time of smoke runs, each a fresh ``python -m bench reproduce ... --budget smoke``
process (imports, a new store, data loading included), one after the other, with the load
average before each and the accuracy each reports. Writes
``OUT/smoke-durations-<commit>.json`` (``bench.speed.benchmark.write_record``): the source of
the README's smoke durations.

    python scripts/smoke_durations.py [--data-root DIR] [--out DIR] [JOB ...]

A JOB is a recipe name followed by its extra arguments, as one string
(``"gm-cifar10-ipc1 --dataset cifar10-jpeg"``); the default jobs are the README's.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.speed.benchmark import write_record

JOBS = [
    "gm-mnist-ipc1",
    "gm-fashionmnist-ipc1",
    "gm-cifar10-ipc1 --dataset cifar10-jpeg",
    "random-mnist-ipc1",
    "herding-mnist-ipc1",
    "whole-mnist",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", default=JOBS)
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--out", type=Path, default=Path("leaderboards/benchmarks"))
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for i, job in enumerate(args.jobs):
            command = [sys.executable, "-m", "bench", "reproduce", *shlex.split(job)]
            command += ["--budget", "smoke", "--data-root", args.data_root, "--out", f"{work}/{i}"]
            load = os.getloadavg()[0]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - start
            measured = re.search(r"measured : (.*)", done.stdout + done.stderr)
            runs.append(
                {
                    "job": job,
                    "seconds": round(seconds, 1),
                    "load_average_1min": load,
                    "exit_status": done.returncode,
                    "accuracy": measured.group(1) if measured else None,
                }
            )
            print(f"{job}: {seconds:.0f} s (load {load:.2f}), {runs[-1]['accuracy']}", flush=True)
    write_record(
        args.out,
        "smoke-durations",
        torch.device("cpu"),
        command="python -m bench reproduce JOB --budget smoke (end to end, fresh process each)",
        runs=runs,
    )


if __name__ == "__main__":
    main()
