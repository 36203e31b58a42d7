"""The [published] table: the design behind a number, its std convention, other quotes."""

import pytest

from bench.core.errors import ConfigError
from bench.core.schema import parse
from bench.spec.recipe_schema import PublishedModel
from bench.spec.recipes import _published, load_recipe


def test_dc_and_mtt_recipes_record_the_published_design():
    dc = load_recipe("gm-mnist-ipc50").published
    assert (dc.num_exp, dc.num_eval, dc.n, dc.std_ddof) == (5, 20, 100, 0)
    assert [(q.mean, q.std) for q in dc.alternatives] == [(98.8, 0.2)]
    mtt = load_recipe("mtt-cifar10-ipc1").published
    assert mtt.one_set and mtt.n == 5 and mtt.alternatives[0].mean == 46.2
    pc = load_recipe("pc-gm-mnist-pytorch-2layer").published
    assert pc.one_set and pc.std is None


def _read(table: dict):
    return _published(parse(PublishedModel, table, "recipe x"))


def test_inconsistent_or_unknown_published_fields_are_refused():
    base = {"mean": 1.0, "std": 0.5, "source": "s"}
    assert _read({**base, "num_exp": 5, "num_eval": 20}).n == 100
    with pytest.raises(ConfigError, match="num_exp x num_eval"):
        _read({**base, "n": 10, "num_exp": 5, "num_eval": 20})
    with pytest.raises(ConfigError, match="std_ddof"):
        _read({**base, "std_ddof": 2})
    with pytest.raises(ConfigError, match="sd"):
        _read({**base, "alternatives": [{"mean": 1.0, "sd": 1, "source": "t"}]})
