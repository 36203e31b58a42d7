"""End-to-end time of one run's synthetic sets one after another against ``--parallel-sets``,
interleaved (sequential, parallel, sequential, ...), on the same recipe, seed and device; records
the wall times, the load average before each run and whether the set files are identical.

    python scripts/parallel_sets_benchmark.py [--recipe gm-mnist-ipc1] [--sets 2] [--rounds 1]
        [--device cpu] [--data-root ../shared/datasets] [--out leaderboards/benchmarks]
        [--set KEY=VALUE ...]

Writes ``<out>/parallel-sets-<commit>.json`` (``bench.speed.benchmark.write_record``). On a CPU
the sequential run uses all threads and each of the N processes ``threads // N``, so the set
files may differ in the last bits; the record says whether they do.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.core.paths import REPO_ROOT
from bench.speed.benchmark import write_record


def _run(args, out: Path, parallel: int) -> tuple[float, float, list[str]]:
    """Seconds of one ``reproduce``, the load average before it and its set files' SHA-256."""
    argv = [sys.executable, "-m", "bench", "reproduce", args.recipe, "--budget", args.budget]
    argv += ["--data-root", str(args.data_root), "--out", str(out), "--device", args.device]
    argv += ["--set", f"eval.num_exp={args.sets}", "--parallel-sets", str(parallel)]
    for item in args.set:
        argv += ["--set", item]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO_ROOT, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    files = sorted(out.glob("sets/*/set*/synthetic_set.safetensors"))
    return seconds, load, [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="gm-mnist-ipc1")
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--sets", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "leaderboards" / "benchmarks")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            row = {}
            for name, parallel in (("sequential", 1), ("parallel", args.sets)):
                seconds, load, hashes = _run(args, Path(work) / f"{name}-{r}", parallel)
                row[name] = {"seconds": round(seconds, 1), "load_before": load, "sets": hashes}
                print(f"round {r}: {name:10s} {seconds:6.1f} s (load {load:.1f})")
            row["identical_sets"] = row["sequential"]["sets"] == row["parallel"]["sets"]
            row["speedup"] = round(row["sequential"]["seconds"] / row["parallel"]["seconds"], 3)
            rounds.append(row)
    write_record(
        args.out,
        "parallel-sets",
        torch.device(args.device),
        recipe=args.recipe,
        budget=args.budget,
        sets=args.sets,
        overrides=args.set,
        threads=torch.get_num_threads(),
        rounds=rounds,
    )


if __name__ == "__main__":
    main()
