"""Explicit, derived seeds: every random draw in a run is a function of the run's base seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def derive_seed(base: int, *keys: int) -> int:
    """A 63-bit seed derived from ``base`` and integer ``keys`` (e.g. synthetic-set index,
    outer iteration, model index) with NumPy's ``SeedSequence``, so that neighbouring keys give
    statistically independent streams and no seed depends on the clock."""
    state = np.random.SeedSequence([base, *keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass(frozen=True)
class Stream:
    """One named seed stream: draws of it are ``derive_seed(seed, code, *keys)``, with one key
    per name in ``keys`` (e.g. ``("iteration",)``: one seed per outer iteration).

    ``overlaps``: the runner stream (``RUNNER_STREAMS``) this one knowingly shares its key path
    with, kept because renumbering would change committed results; the runner only derives
    further seeds from its streams (``derive_seed(E, k)``), never seeds a generator with ``E``
    itself, so a method stream used directly as a seed draws differently. Empty: no overlap."""

    code: int
    keys: tuple[str, ...] = ()
    overlaps: str = ""


class SeedStreams:
    """The named seed streams one party (the runner, or a method) draws from one seed: a
    method writes ``STREAMS.seed(seed, "network", it)`` instead of ``derive_seed(seed, 2, it)``,
    and the declaration, not a comment, says which integer each stream is.

    Raises:
        ValueError: at declaration, when two streams share a key path (code and number of
            keys), or a method's stream shares one of the runner's without ``overlaps`` naming
            it; at a draw, for an unknown name or the wrong number of keys.
    """

    def __init__(self, *, _runner: bool = False, **streams: Stream):
        self.streams = dict(streams)
        seen: dict[tuple[int, int], str] = {}
        taken = {} if _runner else RUNNER_STREAMS.paths()
        for name, stream in streams.items():
            path = (stream.code, len(stream.keys))
            if path in seen:
                raise ValueError(f"seed streams {seen[path]!r} and {name!r} share code {path[0]}")
            seen[path] = name
            if path in taken and stream.overlaps != taken[path]:
                raise ValueError(
                    f"seed stream {name!r} (code {stream.code}, {len(stream.keys)} key(s)) is the "
                    f"runner's {taken[path]!r} stream: pick another code (bench.core.seeds)"
                )

    def paths(self) -> dict[tuple[int, int], str]:
        """Stream name by key path: (code, number of keys)."""
        return {(s.code, len(s.keys)): name for name, s in self.streams.items()}

    def seed(self, base: int, name: str, *keys: int) -> int:
        """The seed of stream ``name`` for ``keys`` (one per declared key) under ``base``."""
        stream = self.streams.get(name)
        if stream is None:
            raise ValueError(f"no seed stream {name!r}; declared: {', '.join(self.streams)}")
        if len(keys) != len(stream.keys):
            expected = ", ".join(stream.keys) or "none"
            raise ValueError(f"seed stream {name!r} takes keys ({expected}), got {len(keys)}")
        return derive_seed(base, stream.code, *keys)


RUNNER_STREAMS = SeedStreams(
    _runner=True,
    evaluation=Stream(1),  # the final set's evaluation (bench.evaluation.evaluate derives from it)
    stream_evaluation=Stream(3),  # the evaluation on a method's stream (GTN's generator)
    evaluation_during=Stream(10, ("iteration",)),  # a method's evaluations while it distils
)
"""The runner's streams of a synthetic set's seed, which every method's seed also feeds: a
method's ``SeedStreams`` may not reuse their key paths. ``evaluation_during`` was code 2 until
2026-12 (shared with DC's per-iteration network seed; MTT, its only user, took no other draw
from that path), which changed intermediate evaluations only, never a final set."""
