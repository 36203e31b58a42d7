"""Explicit, derived seeds: every random draw in a run is a function of the run's base seed."""

from __future__ import annotations

import numpy as np


def derive_seed(base: int, *keys: int) -> int:
    """A 63-bit seed derived from ``base`` and integer ``keys`` (e.g. synthetic-set index,
    outer iteration, model index) with NumPy's ``SeedSequence``, so that neighbouring keys give
    statistically independent streams and no seed depends on the clock."""
    state = np.random.SeedSequence([base, *keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))
