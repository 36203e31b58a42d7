"""The bookkeeping every distilled method's outer loop shares: where to start after
``--resume``, the divergence check that keeps the last good synthetic set, and the report after
each iteration that the runner logs and checkpoints."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from bench.core.errors import DivergedError
from bench.data.synthetic import SyntheticSet
from bench.spec.method import AfterIteration


@dataclass
class OuterLoop:
    """Iterate ``for it in loop:`` from the resumed iteration to ``iterations``.

    Attributes:
        iterations: the method's ``config.iterations``.
        resume: the state a checkpoint holds (``"iteration"`` = next iteration), or ``None``.
        after_iteration: the runner's callback (``bench.spec.method.AfterIteration``), or None.
        synthetic_set: returns the current synthetic set (kept on divergence, returned at the
            end).
        state: returns the method's resumable tensors and optimiser states (without
            ``"iteration"``, which this class adds).
    """

    iterations: int
    resume: dict[str, Any] | None
    after_iteration: AfterIteration | None
    synthetic_set: Callable[[], SyntheticSet]
    state: Callable[[], dict[str, Any]]

    @property
    def start(self) -> int:
        """The first iteration to run: 0, or the checkpoint's next iteration."""
        return int(self.resume["iteration"]) if self.resume is not None else 0

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.iterations))

    def check_finite(self, what: str, value: float, *tensors: torch.Tensor, hint: str) -> None:
        """Raise ``DivergedError`` (with ``last_good`` = the current synthetic set, from before
        the failing step) when ``value`` or any of ``tensors`` is NaN or infinite.

        ``what`` names the quantity and where (``"matching loss ... at iteration 3"``), ``hint``
        what to change (``"lower method.lr_img"``)."""
        if math.isfinite(value) and all(bool(torch.isfinite(t).all()) for t in tensors):
            return
        error = DivergedError(f"{what} became {value}; {hint}; the last good synthetic set is kept")
        error.last_good = self.synthetic_set()
        raise error

    def report(self, it: int, metrics: dict[str, float]) -> None:
        """Hand iteration ``it``'s metrics and its resumable state to the runner."""
        if self.after_iteration is not None:
            self.after_iteration(it, metrics, lambda: {"iteration": it + 1, **self.state()})
