"""``reproduce --parallel-sets N``: the synthetic sets of a run computed at once, each in its own
process, give the sets and accuracies of the same run computed one set after another."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from bench.cli import main
from bench.core.paths import REPO_ROOT
from bench.run.tracking import Tracker

# 2 sets of 3 outer iterations on 8 real images per class, 1 network of 1 epoch each
TINY = [
    *("--set", "method.iterations=3", "--set", "method.batch_real=8"),
    *("--set", "eval.num_exp=2", "--set", "eval.num_eval=1", "--set", "eval.epochs=1"),
    *("--device", "cpu"),
]


def test_parallel_sets_must_be_positive(tmp_path, capsys):
    assert main(["reproduce", "gm-mnist-ipc1", "--parallel-sets", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --parallel-sets must be at least 1"


def _run(data_root, out, *extra):
    # one thread per process in both runs: sums over threads may round differently
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = ["reproduce", "gm-mnist-ipc1", "--data-root", str(data_root), "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "bench", *argv, *TINY, *extra],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    found = tracker.client.search_runs([tracker.experiment_id])
    parent = next(r for r in found if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in found if r is not parent]
    return tracker, parent, children


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_two_sets_at_once_equal_two_sets_one_after_the_other(tmp_path, data_root):
    _, sequential, _ = _run(data_root, tmp_path / "sequential")
    tracker, parallel, children = _run(data_root, tmp_path / "parallel", "--parallel-sets", "2")
    assert parallel.info.status == "FINISHED"
    assert sorted(c.info.status for c in children) == ["FINISHED", "FINISHED"]
    folders = [
        tmp_path / name / "sets" / run.info.run_id
        for name, run in (("sequential", sequential), ("parallel", parallel))
    ]
    for index in (0, 1):  # the same bytes: each set drew from its own seeds only
        files = [f / f"set{index}" / "synthetic_set.safetensors" for f in folders]
        assert _digest(files[0]) == _digest(files[1])
    accuracies = [json.loads((f / "accuracies.json").read_text()) for f in folders]
    assert accuracies[0] == accuracies[1] and len(accuracies[0]["ConvNet"]) == 2
    for child in children:  # each set's process logged its own run, every iteration once
        losses = tracker.client.get_metric_history(child.info.run_id, "distill/loss")
        assert sorted(m.step for m in losses) == [0, 1, 2]
