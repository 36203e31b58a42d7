"""Every DSA and DM recipe of dc-table1 runs end to end from the command line: its smoke budget
shrunk to one outer iteration and one network of one epoch, on the real data here (SVHN and the
original CIFAR-10 are not on this machine: their recipes run on the CIFAR-10 JPEG copy, which has
their shape, and say so)."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.run.tracking import Tracker

pytestmark = pytest.mark.slow

ON_THIS_MACHINE = {"mnist": "mnist", "fashionmnist": "fashionmnist"}
"""datasets of the recipes that are here; the others run on ``cifar10-jpeg``"""


@pytest.mark.parametrize("method", ["dsa", "dm"])
@pytest.mark.parametrize("dataset", ["mnist", "fashionmnist", "svhn", "cifar10"])
@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_recipe_runs_end_to_end(method, dataset, ipc, data_root, tmp_path):
    recipe = f"{method}-{dataset}-ipc{ipc}"
    shrunk = ["method.iterations=1", "eval.epochs=1", "eval.num_eval=1"]
    code = main(
        ["reproduce", recipe, "--budget", "smoke", "--data-root", str(data_root)]
        + ["--dataset", ON_THIS_MACHINE.get(dataset, "cifar10-jpeg")]
        + [arg for item in shrunk for arg in ("--set", item)]
        + ["--out", str(tmp_path), "--device", "cpu"]
    )
    assert code == 0
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    (parent,) = [
        r
        for r in tracker.client.search_runs([tracker.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert parent.info.status == "FINISHED" and parent.data.tags["recipe"] == recipe
    assert parent.data.params["eval.augmentation"] == "dsa"
    assert parent.data.params["eval.dsa_align_corners"] == "False"
    assert 0 <= parent.data.metrics["eval/ConvNet/mean"] <= 100
