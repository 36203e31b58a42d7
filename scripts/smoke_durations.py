"""End-to-end time of ``python -m bench`` jobs, each a fresh process (imports, a new store, data
loading included), one after the other, with the load average before each and the accuracy each
reports. Writes ``OUT/smoke-durations-<commit>.json`` (``bench.speed.benchmark.write_record``):
the source of the durations in docs/recipes-and-budgets.md and docs/methods/mtt.md.

    python scripts/smoke_durations.py [--data-root DIR] [--out DIR] [JOB ...]

A JOB is the arguments of one ``python -m bench`` command, as one string, in which ``{work}``
stands for a folder the jobs share (``"reproduce gm-cifar10-ipc1 --budget smoke --dataset
cifar10-jpeg"``); each also gets ``--data-root`` and its own ``--out``. The default jobs are the
docs' smoke runs; with ``--more``, the docs' other timed commands (the larger ipc, MTT's
experts and smoke run, ``gm-mnist-ipc1``'s reduced budget).
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
    "reproduce gm-mnist-ipc1 --budget smoke",
    "reproduce gm-fashionmnist-ipc1 --budget smoke",
    "reproduce gm-cifar10-ipc1 --budget smoke --dataset cifar10-jpeg",
    "reproduce random-mnist-ipc1 --budget smoke",
    "reproduce herding-mnist-ipc1 --budget smoke",
    "reproduce whole-mnist --budget smoke",
]
MORE = [
    "reproduce gm-mnist-ipc10 --budget smoke",
    "reproduce gm-mnist-ipc50 --budget smoke",
    "experts --dataset cifar10-jpeg --zca --num-experts 2 --epochs 3 --images-per-class 100"
    " --experts-dir {work}/experts",
    "reproduce mtt-cifar10-ipc1 --budget smoke --dataset cifar10-jpeg"
    " --set method.experts_dir={work}/experts",
    "reproduce gm-mnist-ipc1 --budget reduced",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*")
    parser.add_argument("--more", action="store_true", help="the docs' other timed commands")
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--out", type=Path, default=Path("leaderboards/benchmarks"))
    args = parser.parse_args()
    jobs = args.jobs or (MORE if args.more else JOBS)
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for i, job in enumerate(jobs):
            command = [sys.executable, "-m", "bench", *shlex.split(job.format(work=work))]
            command += ["--data-root", args.data_root, "--out", f"{work}/{i}"]
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
        command="python -m bench JOB (end to end, a fresh process each)",
        runs=runs,
    )


if __name__ == "__main__":
    main()
