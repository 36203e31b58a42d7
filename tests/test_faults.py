"""Bad input and faults: one-line errors, non-zero exits, FAILED runs that keep their work,
and ``--resume`` that gives exactly the uninterrupted result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core.errors import CheckpointError, ShapeError
from bench.core.paths import REPO_ROOT
from bench.data.real import load_card
from bench.data.synthetic import SyntheticSet
from bench.run.checkpoint import CheckpointStore
from bench.run.tracking import Tracker

# A tiny protocol: 6 outer iterations on 16 real images per class, 1 network, 2 epochs.
TINY = [
    "--set",
    "method.iterations=6",
    "--set",
    "method.batch_real=16",
    "--set",
    "eval.num_exp=1",
    "--set",
    "eval.num_eval=1",
    "--set",
    "eval.epochs=2",
    "--checkpoint-every",
    "2",
    "--device",
    "cpu",
]


def tiny_run(data_root, out, *extra: str) -> list[str]:
    """Arguments of ``reproduce gm-mnist-ipc1`` with the TINY protocol."""
    return [
        "reproduce",
        "gm-mnist-ipc1",
        "--data-root",
        str(data_root),
        "--out",
        str(out),
        *TINY,
        *extra,
    ]


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m bench`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *phrases: str):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def runs(out):
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", out)
    found = tracker.client.search_runs([tracker.experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    return tracker, parents, [r for r in found if r not in parents]


def test_unknown_recipe_names_the_nearest_ones():
    result = cli("reproduce", "gm-mnst")
    assert_one_line_error(result, 2, "unknown recipe 'gm-mnst'", "nearest: gm-mnist")


def test_unknown_config_key_is_an_error(tmp_path):
    result = cli("reproduce", "gm-mnist-ipc1", "--set", "method.lr_imgg=1", "--out", str(tmp_path))
    assert_one_line_error(result, 2, "unknown key 'lr_imgg'", "did you mean 'lr_img'")


def test_missing_data_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    result = cli("reproduce", "gm-mnist-ipc1", "--data-root", str(missing), "--out", str(tmp_path))
    assert_one_line_error(result, 2, str(missing / "MNIST"), "--data-root", "--download")


def test_wrong_synthetic_shapes_are_refused(mnist):
    _, test = mnist
    bad = SyntheticSet(torch.zeros(10, 3, 32, 32), torch.arange(10), "x", "mnist", 1, 0, "")
    with pytest.raises(ShapeError, match=r"shape \[10, 3, 32, 32\].*needs \[N, 1, 28, 28\]"):
        bad.validate(test.card)
    labels = torch.arange(9)
    bad_labels = SyntheticSet(torch.zeros(10, 1, 28, 28), labels, "x", "mnist", 1, 0, "")
    with pytest.raises(ShapeError, match="one label per image"):
        bad_labels.validate(load_card("mnist"))


def test_checkpoint_of_another_shape_or_config_is_refused(tmp_path):
    store = CheckpointStore(tmp_path, "abc")
    images = torch.zeros(10, 1, 28, 28)
    store.save(0, {"distill": {"iteration": 1, "images": images, "optimizer": {}}})
    assert store.load(0, (10, 1, 28, 28))["distill"]["iteration"] == 1
    with pytest.raises(CheckpointError, match=r"needs \[100, 1, 28, 28\]"):
        store.load(0, (100, 1, 28, 28))
    with pytest.raises(CheckpointError, match="belongs to config abc"):
        CheckpointStore(tmp_path, "other").load(0, (10, 1, 28, 28))


@pytest.mark.slow
def test_nan_loss_stops_marks_failed_and_keeps_the_last_good_set(tmp_path, data_root):
    result = cli(*tiny_run(data_root, tmp_path, "--set", "method.lr_img=1e38"))
    assert_one_line_error(result, 3, "matching loss became nan", "last good synthetic set")
    tracker, parents, children = runs(tmp_path)
    assert parents[0].info.status == children[0].info.status == "FAILED"
    names = {a.path for a in tracker.client.list_artifacts(children[0].info.run_id)}
    assert "synthetic_set.safetensors" in names
    child = children[0].info.run_id
    kept = tracker.download_artifact(child, "synthetic_set.safetensors", tmp_path)
    assert torch.isfinite(SyntheticSet.load(kept).images).all()


def interrupted_run(args: list[str], at_iteration: int, monkeypatch) -> str:
    """Run ``main(args)`` as if Ctrl-C came during outer iteration ``at_iteration``; returns
    the parent run id (the run is expected to end FAILED with exit code 130)."""
    original = Tracker.log_metrics

    def interrupt(self, run_id, metrics, step=0):
        if "distill/loss" in metrics and step == at_iteration:
            raise KeyboardInterrupt
        return original(self, run_id, metrics, step)

    with monkeypatch.context() as patch:
        patch.setattr(Tracker, "log_metrics", interrupt)
        assert main(args) == 130
    out = Path(args[args.index("--out") + 1])
    _, parents, children = runs(out)
    assert parents[0].info.status == children[0].info.status == "FAILED"
    return parents[0].info.run_id


@pytest.mark.slow
def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path, data_root, monkeypatch, capsys):
    assert main(tiny_run(data_root, tmp_path / "straight")) == 0
    out = tmp_path / "killed"
    run_id = interrupted_run(tiny_run(data_root, out), 3, monkeypatch)
    printed = capsys.readouterr().out  # the failure says how to continue, with --out
    assert f"--out {out}" in printed and f"--resume {run_id}" in printed
    assert (out / "checkpoints" / run_id / "set0.pt").exists()

    other = main(tiny_run(data_root, out, "--resume", run_id, "--seed", "1"))
    assert other == 2  # another seed is another config: refused
    assert main(tiny_run(data_root, out, "--resume", run_id)) == 0

    tracker, parents, children = runs(out)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    _, straight, _ = runs(tmp_path / "straight")
    sets = [
        SyntheticSet.load(folder / "sets" / run.info.run_id / "set0" / "synthetic_set.safetensors")
        for folder, run in ((tmp_path / "straight", straight[0]), (out, parents[0]))
    ]
    assert torch.equal(sets[0].images, sets[1].images)
    accuracy = "eval/ConvNet/acc"
    assert parents[0].data.metrics[accuracy] == straight[0].data.metrics[accuracy]
    resumed_losses = tracker.client.get_metric_history(children[0].info.run_id, "distill/loss")
    assert sorted({m.step for m in resumed_losses}) == list(range(6))


@pytest.mark.slow
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, data_root, monkeypatch):
    args = tiny_run(data_root, tmp_path)
    run_id = interrupted_run(args, 2, monkeypatch)
    (tmp_path / "checkpoints" / run_id / "set0.pt").write_bytes(b"not a checkpoint")
    result = cli(*args, "--resume", run_id)
    assert_one_line_error(result, 2, "is corrupt", "set0.pt", "delete")
