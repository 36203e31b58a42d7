"""Shared fixtures. Tests read real MNIST from ../shared/datasets (never write there)."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from bench.core.memory import keep_freed_memory
from bench.core.paths import REPO_ROOT

DATA_ROOT = (REPO_ROOT.parent / "shared" / "datasets").resolve()


def pytest_configure(config):
    """Freed memory is kept for reuse, as the CLI does (``bench.core.memory``).

    Under pytest-xdist (``tox``: ``-n auto``) every worker computes with one thread, and so do
    the processes its tests start: the workers share the cores instead of oversubscribing them,
    and a test comparing a run in this process with one in a subprocess compares like with
    like."""
    keep_freed_memory()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Files with the most ``slow`` tests (end-to-end runs) first, each file's tests in their
    order. Under ``--dist loadfile --no-loadscope-reorder`` (tox) the workers take whole files in
    this order, so the long files start first and the quick ones fill the end, instead of a long
    file starting last and running alone (xdist's own order is by number of tests)."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: files stay contiguous


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "MNIST" / "raw").is_dir():
        pytest.fail(f"real MNIST is expected under {DATA_ROOT}/MNIST/raw (../shared/datasets)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def mnist(data_root):
    from bench.data.real import load_card, load_real

    card = load_card("mnist")
    return load_real(card, data_root, "train"), load_real(card, data_root, "test")
