"""Seconds to open a new SQLite tracking store in a fresh process: copied from the template
(``bench.run.tracking.template_store``, the default) against MLflow making the schema itself,
interleaved over ``--rounds`` (the template is made before the first round).

    python scripts/new_store_benchmark.py [--rounds 5] [--out leaderboards/benchmarks]

Writes ``<out>/new-store-<commit>.json`` (``bench.speed.benchmark.write_record``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench.core.paths import REPO_ROOT
from bench.run.tracking import template_store
from bench.speed.benchmark import write_record

OPEN_STORE = """
import json, sys, time
from pathlib import Path
import mlflow.tracking
from bench.run import tracking
if sys.argv[2] == "mlflow":
    tracking._new_sqlite_store = lambda uri: None
folder = Path(sys.argv[1])
start = time.perf_counter()
tracking.Tracker(f"sqlite:///{folder / 'mlflow.db'}", folder)
print(json.dumps(time.perf_counter() - start))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "leaderboards" / "benchmarks")
    args = parser.parse_args()
    template_store()
    seconds: dict[str, list[float]] = {"template": [], "mlflow": []}
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            for way in seconds:
                folder = Path(work) / f"{way}-{r}"
                folder.mkdir()
                done = subprocess.run(
                    [sys.executable, "-c", OPEN_STORE, str(folder), way],
                    cwd=REPO_ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                seconds[way].append(json.loads(done.stdout.splitlines()[-1]))
    medians = {way: statistics.median(values) for way, values in seconds.items()}
    print(f"new store, medians of {args.rounds}: {medians}")
    write_record(
        args.out,
        "new-store",
        torch.device("cpu"),
        what="seconds of bench.run.tracking.Tracker() on a new sqlite store, fresh process "
        "(mlflow imported before the clock starts)",
        median_seconds=medians,
        seconds=seconds,
    )


if __name__ == "__main__":
    main()
