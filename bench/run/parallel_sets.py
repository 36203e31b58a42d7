"""Several synthetic sets of one run at once (``reproduce --parallel-sets N``).

The ``num_exp`` synthetic sets of a run are independent: set ``i`` draws every random number
from ``derive_seed(seed, i)`` (its own ``torch.Generator``s, never the global ones), so it is the
same set whichever process computes it and whenever. Here each set runs in its own process on
the run's device (``bench.run.processes``), ``N`` at a time; each process opens its own
``Tracker`` on the run's store (``Tracker`` serialises SQLite writers with a file lock, as the
sweep's workers do) and checkpoints its own set's file, so ``--resume`` continues exactly as
after a sequential run.

On a CPU the processes share the cores: each gets ``torch.get_num_threads() // N`` threads
(at least 1). Floating-point sums can depend on the thread count, so a set is bit-identical
to the sequential run's when both ran with the same threads per process (``tests/
test_parallel_sets.py`` pins that with ``OMP_NUM_THREADS=1``). On a GPU the processes overlap
each other's Python overhead and small kernels, which is where the paper protocol's many
small networks gain (``scripts/device_check.sh``).
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

from bench.core.errors import UserError
from bench.run.processes import map_in_processes, threads_per_process
from bench.run.tracking import Tracker

SetResult = tuple[dict[str, list[float]], list[float], dict[str, list[list[float]]]]
"""what one set's process returns: accuracies ``{model: [network]}``, the best evaluation of the
recipe's model (``[network]``) and its stream accuracies ``{model: [[network]]}``"""


def _one_set(run: Any, uri: str, out: Path, index: int, child: str) -> SetResult:
    """In a worker process: set ``index`` of ``run`` (a ``Reproduction`` without its tracker),
    logged to ``child`` through a tracker of its own on ``uri``. A failure names its set's run
    (``exc.child``) for the parent's clean-up."""
    run.tracker = Tracker(uri, out)
    try:
        result, best = run.one_synthetic_set(index, child)
    except Exception as exc:
        exc.child = child
        raise
    return result, best, run.stream_accuracies


def run_sets_in_processes(
    run: Any, children: list[tuple[int, str]], workers: int
) -> list[SetResult]:
    """Compute set ``index`` of ``run`` (a ``bench.run.runner.Reproduction``) into run
    ``child`` for every ``(index, child)`` of ``children``, ``workers`` processes at a time;
    returns their results in that order and marks each child FINISHED as it ends.

    Raises:
        UserError: the run cannot be sent to another process (something in it is not picklable).
        Whatever a set raised (the first failure; the other processes are stopped, their
        checkpoints kept), KeyboardInterrupt or ``Terminated`` from the caller's thread.
    """
    shipped = dataclasses.replace(run, tracker=None, stream_accuracies={}, lock=None)
    try:  # the data itself is tensors; what else rides along must pickle (no lambdas)
        small = {name: _head(getattr(run, name)) for name in ("train", "test")}
        pickle.dumps(dataclasses.replace(shipped, given=None, **small))
    except Exception as exc:
        raise UserError(
            f"--parallel-sets: this run cannot be sent to worker processes ({exc}); "
            "run it with --parallel-sets 1"
        ) from None
    out = run.folder.parents[1]
    calls = [(shipped, run.tracker.uri, out, index, child) for index, child in children]
    return map_in_processes(
        _one_set,
        calls,
        workers,
        threads_per_process(run.device, workers),
        on_done=lambda position, _: run.tracker.set_status(children[position][1], "FINISHED"),
    )


def _head(split: Any) -> Any:
    """``split`` (a ``RealSet``) cut to its first image, for the picklability check."""
    return dataclasses.replace(split, images=split.images[:1], labels=split.labels[:1])
