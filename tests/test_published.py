"""The [published] table: the design behind a number, its std convention, other quotes."""

import pytest

from bench.core.errors import ConfigError
from bench.spec.recipes import _published, load_recipe


def test_dc_and_mtt_recipes_record_the_published_design():
    dc = load_recipe("gm-mnist-ipc50").published
    assert (dc.num_exp, dc.num_eval, dc.n, dc.std_ddof) == (5, 20, 100, 0)
    assert [(q.mean, q.std) for q in dc.alternatives] == [(98.8, 0.2)]
    mtt = load_recipe("mtt-cifar10-ipc1").published
    assert mtt.one_set and mtt.n == 5 and mtt.alternatives[0].mean == 46.2
    pc = load_recipe("pc-gm-mnist-pytorch-2layer").published
    assert pc.one_set and pc.std is None


def test_inconsistent_or_unknown_published_fields_are_refused():
    base = {"mean": 1.0, "std": 0.5, "source": "s"}
    with pytest.raises(ConfigError, match="num_exp x num_eval"):
        _published({**base, "n": 10, "num_exp": 5, "num_eval": 20}, "recipe x")
    with pytest.raises(ConfigError, match="std_ddof"):
        _published({**base, "std_ddof": 2}, "recipe x")
    with pytest.raises(ConfigError, match="unknown key 'sd'"):
        _published({**base, "alternatives": [{"mean": 1.0, "sd": 1, "source": "t"}]}, "x")
