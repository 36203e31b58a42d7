"""A method outside the repository is one module plus its recipe, found through the
``distillbench.methods`` entry point: the example package in ``examples/dm-example``."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.core.paths import REPO_ROOT
from bench.spec.method import Kind, load_method, registered_methods

EXAMPLE = REPO_ROOT / "examples" / "dm-example"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example package installed (not editable) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_the_example_registers_through_its_entry_point(installed_example, monkeypatch):
    assert "dm-example" not in registered_methods()
    monkeypatch.syspath_prepend(str(installed_example))
    assert registered_methods()["dm-example"] == "distillbench_dm_example.method:METHOD"
    method = load_method("dm-example")
    assert method.kind is Kind.DISTILLED and method.config_class.__name__ == "DMConfig"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed_example), str(REPO_ROOT)]))
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "methods"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "dm-example" in listed.stdout


def test_the_example_distils_and_resumes_through_the_contract(
    installed_example, mnist, monkeypatch
):
    monkeypatch.syspath_prepend(str(installed_example))
    method = load_method("dm-example")
    train, _ = mnist
    small = dataclasses.replace(train, images=train.images[:2000], labels=train.labels[:2000])
    config = method.config_class(iterations=3, batch_real=16)
    states = []

    def keep(it, metrics, state):
        assert metrics["distill/loss"] >= 0
        states.append(copy.deepcopy(state()))  # optimiser buffers change in place

    cpu = torch.device("cpu")
    full = method.distill(small, 2, config, 5, cpu, after_iteration=keep)
    assert full.images.shape == (20, 1, 28, 28) and full.labels.tolist() == [
        c for c in range(10) for _ in range(2)
    ]
    assert not torch.equal(full.images, states[0]["images"])  # the images keep moving
    resumed = method.distill(small, 2, config, 5, cpu, resume=states[0])
    assert torch.equal(full.images, resumed.images)  # resume is exact
