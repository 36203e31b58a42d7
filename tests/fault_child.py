"""``python tests/fault_child.py KIND:N -- <bench argv>``: run ``python -m bench <argv>`` in this
process and SIGKILL it at a chosen point (used by ``tests/test_faults.py``; never by the suite).

KIND:N is
- ``distill:N``: after outer iteration N's loss is computed, before it is logged;
- ``network:N``: in the first epoch of the N-th evaluation network this process trains
  (0-based);
- ``checkpoint:N``: in the middle of the N-th checkpoint write (0-based): half of the new file
  is written to its temporary name, then the process dies before the rename;
- ``none``: no fault.
"""

from __future__ import annotations

import os
import signal
import sys


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(kind: str, n: int) -> None:
    """Patch the one place where the fault ``kind:n`` strikes."""
    if kind == "distill":
        from bench.run.tracking import Tracker

        original = Tracker.log_metrics

        def log_metrics(self, run_id, metrics, step=0):
            if "distill/loss" in metrics and step == n:
                die()
            return original(self, run_id, metrics, step)

        Tracker.log_metrics = log_metrics
    elif kind == "network":
        import bench.evaluation.evaluate as evaluate

        train, started = evaluate.train_on_synthetic, [0]

        def train_on_synthetic(*args, **kwargs):
            index = started[0]
            started[0] += 1
            if index == n:  # called as (model, synset, card, protocol, seed, device, on_epoch)
                args = (*args[:6], die)
            return train(*args, **kwargs)

        evaluate.train_on_synthetic = train_on_synthetic
    elif kind == "checkpoint":
        import bench.run.checkpoint as checkpoint

        write, calls = checkpoint.write_atomic, [0]

        def write_atomic(path, data):
            index = calls[0]
            calls[0] += 1
            if index == n:
                partial = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
                with open(partial, "wb") as handle:  # where write_atomic writes first
                    handle.write(data[: len(data) // 2])
                die()
            return write(path, data)

        checkpoint.write_atomic = write_atomic
    elif kind != "none":
        raise SystemExit(f"unknown fault {kind!r}")


if __name__ == "__main__":
    spec, separator, *argv = sys.argv[1:]
    assert separator == "--"
    kind, _, count = spec.partition(":")
    arm(kind, int(count or 0))
    from bench.cli import main

    sys.exit(main(argv))
