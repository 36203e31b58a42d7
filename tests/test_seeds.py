"""Named seed streams: the same seeds as the integers they name, and no path shared by accident."""

import numpy as np
import pytest

from bench.core.seeds import RUNNER_STREAMS, SeedStreams, Stream, derive_seed


def test_derive_seed_is_numpys_seed_sequence_folded_to_63_bits():
    state = np.random.SeedSequence([5, 2, 7]).generate_state(2, dtype=np.uint32)
    assert derive_seed(5, 2, 7) == (int(state[0]) << 31) ^ int(state[1])
    assert 0 <= derive_seed(5, 2, 7) < 2**63


def test_the_built_in_streams_are_the_integers_they_replaced():
    """Renaming changed no draw: the committed sets and the paper runs in progress keep their
    seeds (gm: init 0, iteration 1, network 2; GTN: generator 1 ... select 5; MTT, pc-gm and the
    coresets likewise)."""
    from distillbench_methods import coreset, gm, gtn, mtt, pc_gm

    assert gm.STREAMS.seed(9, "init") == derive_seed(9, 0)
    assert gm.STREAMS.seed(9, "iteration", 4) == derive_seed(9, 1, 4)
    assert gm.STREAMS.seed(9, "network", 4) == derive_seed(9, 2, 4)
    assert mtt.STREAMS.seed(9, "iteration", 4) == derive_seed(9, 1, 4)
    assert mtt.STREAMS.seed(9, "network") == derive_seed(9, 2)
    assert pc_gm.STREAMS.seed(9, "network") == derive_seed(9, 2)
    assert coreset.STREAMS.seed(9, "selection") == derive_seed(9, 0)
    expected = {"generator": (1,), "sample": (4,), "iteration": (2, 4), "learner": (3, 4)}
    for name, keys in expected.items():
        assert gtn.STREAMS.seed(9, name, *keys[1:]) == derive_seed(9, *keys), name
    assert gtn.STREAMS.seed(9, "select", 4) == derive_seed(9, 5, 4)
    assert RUNNER_STREAMS.seed(9, "evaluation") == derive_seed(9, 1)
    assert RUNNER_STREAMS.seed(9, "stream_evaluation") == derive_seed(9, 3)


def test_a_stream_on_the_runners_path_or_declared_twice_is_refused():
    # DC's per-iteration network seed was the runner's evaluation-during seed before the streams
    # were named: a method declaring the runner's path now fails at import
    with pytest.raises(ValueError, match="runner's 'evaluation_during'"):
        SeedStreams(probe=Stream(10, ("iteration",)))
    with pytest.raises(ValueError, match="runner's 'evaluation'"):
        SeedStreams(weights=Stream(1))
    with pytest.raises(ValueError, match="'a' and 'b' share code 4"):
        SeedStreams(a=Stream(4), b=Stream(4))
    SeedStreams(weights=Stream(1, overlaps="evaluation"))  # declared: allowed
    SeedStreams(a=Stream(4), b=Stream(4, ("iteration",)))  # other key count: another path


def test_a_draw_names_a_declared_stream_with_its_keys():
    streams = SeedStreams(network=Stream(2, ("iteration",)))
    with pytest.raises(ValueError, match="no seed stream 'net'"):
        streams.seed(0, "net", 1)
    with pytest.raises(ValueError, match=r"takes keys \(iteration\), got 0"):
        streams.seed(0, "network")
