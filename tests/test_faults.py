"""Bad input and faults: one-line errors, non-zero exits, FAILED runs that keep their work,
and ``--resume`` that gives exactly the uninterrupted result.

Two tables drive the end-to-end part (``slow``): ``CATALOGUE``, bad inputs and environment
faults, each asserting the exit code, exactly one ``error:`` line, no traceback and an untouched
store; and ``TRIALS``, processes SIGKILLed (or sent SIGTERM) at points a seeded generator picks,
resumed, and compared with an uninterrupted run by the SHA-256 of the synthetic-set file and the
accuracies."""

from __future__ import annotations

import hashlib
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core.config import apply_overrides
from bench.core.errors import CheckpointError, ConfigError, ShapeError, UserError
from bench.core.paths import INCLUDE_PATH_VARIABLE, REPO_ROOT
from bench.data.real import load_card
from bench.data.synthetic import SyntheticSet
from bench.run.checkpoint import CheckpointStore
from bench.run.tracking import Tracker
from bench.spec.method import load_method, registered_methods

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


def test_wrong_synthetic_shapes_are_refused(mnist):
    _, test = mnist
    bad = SyntheticSet(
        images=torch.zeros(10, 3, 32, 32),
        labels=torch.arange(10),
        method="x",
        dataset="mnist",
        ipc=1,
        seed=0,
    )
    with pytest.raises(ShapeError, match=r"shape \[10, 3, 32, 32\].*needs \[N, 1, 28, 28\]"):
        bad.validate(test.card)
    labels = torch.arange(9)
    bad_labels = SyntheticSet(
        images=torch.zeros(10, 1, 28, 28), labels=labels, method="x", dataset="mnist", ipc=1, seed=0
    )
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
    assert_one_line_error(result, 3, "became nan", "last good synthetic set")
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
    # iterations 2 and 3 ran twice (checkpoint at 2, interrupted in 3), logged once
    assert sorted(m.step for m in resumed_losses) == list(range(6))


@pytest.mark.slow
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, data_root, monkeypatch):
    args = tiny_run(data_root, tmp_path)
    run_id = interrupted_run(args, 2, monkeypatch)
    (tmp_path / "checkpoints" / run_id / "set0.pt").write_bytes(b"not a checkpoint")
    result = cli(*args, "--resume", run_id)
    assert_one_line_error(result, 2, "is corrupt", "set0.pt", "delete")


# --- artifacts: byte-identical, hashed, verified -------------------------------------------

SAVE_A_SET = """
import sys, torch
from pathlib import Path
from bench.data.real import load_card
from bench.data.synthetic import SyntheticSet
images = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
extras = {"lr": torch.tensor(0.01), "indices": torch.arange(20)}
SyntheticSet(images=images, labels=torch.arange(20) % 10, method="gm", dataset="mnist", ipc=2,
             seed=7, config_hash="abc", extras=extras).save(
    Path(sys.argv[1]), load_card("mnist"))
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_synthetic_set_files_are_byte_identical_across_processes(tmp_path):
    # safetensors orders the metadata differently in every process (a Rust hash map)
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path in paths:
        subprocess.run([sys.executable, "-c", SAVE_A_SET, str(path)], cwd=REPO_ROOT, check=True)
    assert len({sha256(p) for p in paths}) == 1
    from safetensors import safe_open

    with safe_open(str(paths[0]), framework="pt") as handle:  # still a standard file
        meta = handle.metadata()
        assert set(handle.keys()) == {"images", "labels", "lr", "indices"}
    assert meta["method"] == "gm" and len(meta["data_sha256"]) == 64
    assert SyntheticSet.load(paths[0]).seed == 7


def test_a_corrupt_synthetic_set_is_refused(tmp_path):
    path = tmp_path / "s.safetensors"
    subprocess.run([sys.executable, "-c", SAVE_A_SET, str(path)], cwd=REPO_ROOT, check=True)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # one bit of the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="is corrupt") as caught:
        SyntheticSet.load(path)
    assert "\n" not in str(caught.value)


def test_a_checkpoint_whose_bytes_changed_is_refused(tmp_path):
    store = CheckpointStore(tmp_path, "abc")
    store.save(0, {"accuracies": {"ConvNet": [12.5]}, "synthetic": {"images": torch.ones(3)}})
    data = bytearray(store.path(0).read_bytes())
    data[-40] ^= 0x01
    store.path(0).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 differs.*delete"):
        store.load(0, (3,))


@pytest.mark.parametrize("value", ["-0.1", "0", "nan", "inf", "-inf"])
def test_every_learning_rate_of_every_method_must_be_finite_and_positive(value):
    checked = 0
    for name in registered_methods():
        config = load_method(name).config_class()
        for f in fields(config):
            if f.name == "lr" or f.name.startswith("lr_") or f.name.endswith("_lr"):
                with pytest.raises(ConfigError, match=f"{f.name} must be a finite number"):
                    apply_overrides(config, {f.name: value}, "--set method.*")
                checked += 1
    assert checked >= 8  # gm 2, mtt 3, gtn 2 x 3 + neumann_lr, pc-gm 1


# --- end to end: a table of bad inputs and environment faults --------------------------------

# smaller than TINY: 4 outer iterations, 2 evaluation networks of 1 epoch
SMALL = [
    *("--set", "method.iterations=4", "--set", "method.batch_real=8"),
    *("--set", "eval.num_exp=1", "--set", "eval.num_eval=2", "--set", "eval.epochs=1"),
    *("--checkpoint-every", "2", "--device", "cpu"),
]


def small_run(data_root, out, *extra: str) -> list[str]:
    return ["reproduce", "gm-mnist-ipc1", "--data-root", str(data_root), "--out", str(out),
            *SMALL, *extra]  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (lock files aside)."""
    return {
        str(p.relative_to(folder)): sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root):
    """An uninterrupted SMALL run (its own process): out folder, parent run, set file hash."""
    out = tmp_path_factory.mktemp("reference")
    result = cli(*small_run(data_root, out))
    assert result.returncode == 0, result.stderr
    _, parents, _ = runs(out)
    folder = out / "sets" / parents[0].info.run_id
    return out, parents[0], sha256(folder / "set0" / "synthetic_set.safetensors")


def _truncated_mnist(root: Path, data_root: Path) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (data_root / "MNIST" / "raw").iterdir():
        if source.name == "train-images-idx3-ubyte":
            with open(source, "rb") as handle:
                (raw / source.name).write_bytes(handle.read(1_000_000))
        elif not source.is_dir():
            (raw / source.name).symlink_to(source)
    return root


def _file(path: Path) -> Path:
    path.write_text("a file, not a folder")
    return path


# (case, extra setup -> argv, exit code, phrases of the one error line)
CATALOGUE = [
    ("unknown recipe", lambda t, d, o: ["reproduce", "gm-mnst"], 2, ["nearest: gm-mnist"]),
    ("unknown key", lambda t, d, o: small_run(d, o, "--set", "method.lr_imgg=1"), 2,
     ["unknown key 'lr_imgg'", "did you mean 'lr_img'"]),
    ("ill-typed value", lambda t, d, o: small_run(d, o, "--set", "eval.num_eval=two"), 2,
     ["num_eval"]),
    ("--set without =", lambda t, d, o: small_run(d, o, "--set", "method.lr_img"), 2,
     ["expected KEY=VALUE"]),
    ("--set without section", lambda t, d, o: small_run(d, o, "--set", "lr_img=1"), 2,
     ["prefix the key"]),
    ("negative lr", lambda t, d, o: small_run(d, o, "--set", "method.lr_img=-1"), 2,
     ["method.lr_img must be a finite number > 0"]),
    ("NaN lr", lambda t, d, o: small_run(d, o, "--set", "method.lr_img=nan"), 2,
     ["method.lr_img", "got nan"]),
    ("infinite lr", lambda t, d, o: small_run(d, o, "--set", "eval.lr=inf"), 2,
     ["eval.lr", "got inf"]),
    ("momentum 1", lambda t, d, o: small_run(d, o, "--set", "method.momentum_img=1"), 2,
     ["in [0, 1)"]),
    ("zero iterations", lambda t, d, o: small_run(d, o, "--set", "method.iterations=0"), 2,
     ["at least 1"]),
    ("--checkpoint-every 0", lambda t, d, o: small_run(d, o, "--checkpoint-every", "0"), 2,
     ["--checkpoint-every"]),
    ("missing data", lambda t, d, o: small_run(t / "nowhere", o), 2,
     ["not found", "--data-root", "--download"]),
    ("truncated MNIST file", lambda t, d, o: small_run(_truncated_mnist(t / "cut", d), o), 2,
     ["train-images-idx3-ubyte has md5", "re-download"]),
    ("--device tpu", lambda t, d, o: small_run(d, o, "--device", "tpu"), 2,
     ["--device tpu", "cpu"]),
    ("--out under a file", lambda t, d, o: small_run(d, _file(t / "f") / "out"), 2,
     ["--out", "cannot be written"]),
    ("SQLite store under a file", lambda t, d, o: small_run(
        d, o, "--tracking-uri", f"sqlite:///{_file(t / 'g')}/mlflow.db"), 2,
     ["tracking store", "cannot be written"]),
    ("SQLite store is a folder", lambda t, d, o: small_run(
        d, o, "--tracking-uri", f"sqlite:///{t}"), 2, ["not a writable file"]),
    ("no tracking server", lambda t, d, o: small_run(
        d, o, "--tracking-uri", "http://127.0.0.1:5999"), 2,
     ["no MLflow tracking server answers at http://127.0.0.1:5999"]),
    ("--resume of a group", lambda t, d, o: ["reproduce", "pc-gm-table1", "--resume", "x"], 2,
     ["is a group"]),
    ("--resume of an unknown run", lambda t, d, o: small_run(d, o, "--resume", "nosuchrun"), 2,
     ["no run 'nosuchrun'"]),
    ("--resume of a finished run", lambda t, d, o: small_run(d, o, "--resume", "REFERENCE"), 2,
     ["already FINISHED"]),
    ("--resume with another seed", lambda t, d, o: small_run(
        d, o, "--resume", "REFERENCE", "--seed", "3"), 2, ["resume it with the same"]),
    ("--seed -5", lambda t, d, o: small_run(d, o, "--seed", "-5"), 2,
     ["--seed must be between 0 and 2^63 - 1"]),
    ("--set method.iterations=1e23", lambda t, d, o: small_run(
        d, o, "--set", "method.iterations=100000000000000000000000"), 2,
     ["method.iterations=1e+23 could not finish"]),
    ("--checkpoint-every 1e23", lambda t, d, o: small_run(
        d, o, "--checkpoint-every", "100000000000000000000000"), 2,
     ["--checkpoint-every must be between 1 and 10,000,000"]),
    ("--set method.batch_real=100000", lambda t, d, o: small_run(
        d, o, "--set", "method.batch_real=100000"), 2,
     ["method.batch_real=100000 is more than the smallest class of MNIST holds; set at most"]),
    ("--sets outside the design", lambda t, d, o: small_run(d, o, "--sets", "1"), 2,
     ["this design has 1 synthetic set(s)"]),
    ("damaged store (random bytes)", lambda t, d, o: small_run(d, _store(t, os.urandom(100_000))),
     2, ["is damaged", "file is not a database", ".recover"]),
    ("damaged store (truncated)", lambda t, d, o: small_run(
        d, _store(t, (o / "mlflow.db").read_bytes()[: (o / "mlflow.db").stat().st_size // 2])),
     2, ["is damaged", "malformed", ".recover"]),
    ("tracking URI that is no store", lambda t, d, o: small_run(
        d, t, "--tracking-uri", "::garbage::%%"), 2, ["is not a store this suite can log to"]),
    ("--out too long for SQLite", lambda t, d, o: small_run(
        d, t.joinpath(*[c * 200 for c in "xyz"])), 2, ["SQLite opens at most 512"]),
    ("set file is a FIFO", lambda t, d, o: evaluate_run(d, o, _fifo(t / "set.safetensors")), 2,
     ["is a FIFO (named pipe), not a file"]),
    ("set file is a link to /dev/zero", lambda t, d, o: evaluate_run(
        d, o, _link(t / "set.safetensors", "/dev/zero")), 2, ["is a character device"]),
    *[(f"set file with metadata {key}={value!r}", lambda t, d, o, key=key, value=value:
       evaluate_run(d, o, _set_file(t, {key: value})), 2,
       ["unreadable metadata", f"{key}={value!r}"])
      for key, value in [("seed", "x"), ("ipc", "one"), ("preprocessing", "{not json")]],
    ("a recipe with ipc 100000000", lambda t, d, o: [
        a.replace("gm-mnist-ipc1", "huge-ipc") for a in small_run(d, o)
    ] + ["--include-path", str(_huge_ipc_recipe(t))], 2,
     ["huge-ipc: ipc 100000000 is more than the smallest class of MNIST"]),
]  # fmt: skip


def evaluate_run(data_root, out, set_file: Path) -> list[str]:
    return ["evaluate", str(set_file), "--recipe", "gm-mnist-ipc1", "--data-root",
            str(data_root), "--out", str(out), "--device", "cpu"]  # fmt: skip


def _store(folder: Path, content: bytes) -> Path:
    """An --out folder whose mlflow.db holds ``content``."""
    (folder / "mlflow.db").write_bytes(content)
    return folder


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _link(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def _set_file(folder: Path, metadata: dict[str, str]) -> Path:
    """A safetensors synthetic set of MNIST (10 zero images) with ``metadata``."""
    from safetensors.torch import save_file

    path = folder / "set.safetensors"
    tensors = {"images": torch.zeros(10, 1, 28, 28), "labels": torch.arange(10)}
    save_file(tensors, str(path), metadata={"ipc": "1", "seed": "0", **metadata})
    return path


def _huge_ipc_recipe(folder: Path) -> Path:
    text = (REPO_ROOT / "reproduce" / "gm-mnist-ipc1.toml").read_text()
    text = text.replace('name = "gm-mnist-ipc1"', 'name = "huge-ipc"').replace(
        "\nipc = 1\n", "\nipc = 100000000\n"
    )
    (folder / "huge-ipc.toml").write_text(text)
    return folder


@pytest.mark.slow
def test_bad_input_catalogue(reference, tmp_path, data_root, capsys, monkeypatch):
    """Every case: its exit code, one error line, no traceback, within seconds, and the store
    with the earlier finished run byte-for-byte as it was."""
    out, parent, _ = reference
    before = snapshot(out)
    cases = [*CATALOGUE, ("missing MinkowskiEngine", None, 2, ["MinkowskiEngine", "dense"])]
    for name, make, code, phrases in cases:
        where = tmp_path / name.replace(" ", "_").replace("/", "_")
        where.mkdir()
        # main(--include-path) exports the folder for sweep tasks: undone with the case
        monkeypatch.setenv(INCLUDE_PATH_VARIABLE, "")
        if make is None:  # the sparse point-cloud recipe on a machine without MinkowskiEngine
            monkeypatch.setitem(sys.modules, "MinkowskiEngine", None)
            argv = ["reproduce", "pc-gm-mnist-me-2layer", "--data-root", str(data_root),
                    "--out", str(out), "--device", "cpu"]  # fmt: skip
        else:
            argv = [a.replace("REFERENCE", parent.info.run_id) for a in make(where, data_root, out)]
        started = time.perf_counter()
        assert main(argv) == code, name
        seconds = time.perf_counter() - started
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert "Traceback" not in err
        for phrase in phrases:
            assert phrase in lines[0], (name, lines[0])
        assert seconds < 30, (name, seconds)  # the tracking probe: 5 s, not MLflow's minutes
        monkeypatch.undo()
        assert snapshot(out) == before, name
    _, parents, _ = runs(out)
    assert [r.info.run_id for r in parents] == [parent.info.run_id]  # no run was created
    assert parents[0].info.status == "FINISHED"


# --- end to end: kills at seeded random points, resumed, compared -----------------------------

CHILD = str(Path(__file__).with_name("fault_child.py"))
_rng = random.Random(21)
# SMALL: 4 outer iterations (checkpoints after 2 and 4), then 2 networks; checkpoint writes are
# numbered 0 (iteration 2), 1 (iteration 4), 2 (the finished set), 3 and 4 (each network)
TRIALS = {  # (a kill during distillation is the first kill of the resumed-run trial)
    "SIGKILL during distillation, then of the resumed run": [
        f"distill:{_rng.randrange(1, 3)}",
        "distill:3",
    ],
    "SIGKILL during a later network": ["network:1"],
    "SIGKILL during a checkpoint write": [f"checkpoint:{_rng.randrange(1, 5)}"],
    "SIGTERM during distillation": ["sigterm"],
    "SIGINT twice, 50 ms apart, during distillation": ["sigint-twice"],
}
SIGNALLED = {"sigterm": [signal.SIGTERM], "sigint-twice": [signal.SIGINT, signal.SIGINT]}
"""faults sent from here once the first checkpoint exists, 50 ms apart"""


def fault_run(fault: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``argv`` in a new process killed by ``fault`` (``fault_child.py``; ``SIGNALLED``: the
    signals sent from here once the first checkpoint exists)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    if fault not in SIGNALLED:
        command = [sys.executable, CHILD, fault, "--", *argv]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=900)  # fmt: skip
    out = Path(argv[argv.index("--out") + 1])
    command = [sys.executable, CHILD, "none", "--", *argv]
    pipe = subprocess.PIPE
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=pipe, stderr=pipe, text=True)
    while not list(out.glob("checkpoints/*/set0.pt")) and process.poll() is None:
        time.sleep(0.05)
    for number in SIGNALLED[fault]:
        process.send_signal(number)
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("trial", list(TRIALS))
def test_killed_run_resumes_to_the_identical_result(trial, reference, tmp_path, data_root):
    ref_out, ref_parent, ref_hash = reference
    out = tmp_path / "out"
    argv = small_run(data_root, out)
    run_id = None
    for fault in TRIALS[trial]:
        result = fault_run(fault, argv + (["--resume", run_id] if run_id else []))
        if fault in SIGNALLED:  # handled as Ctrl-C: FAILED, resume command printed
            assert result.returncode == 130, result.stderr
            assert "Traceback" not in result.stderr and "Continue it with" in result.stdout
        else:
            assert result.returncode == -signal.SIGKILL, result.stderr
        _, parents, _ = runs(out)
        run_id = parents[0].info.run_id
        expected = "FAILED" if fault in SIGNALLED else "RUNNING"
        assert parents[0].info.status == expected
    final = cli(*argv, "--resume", run_id)
    assert final.returncode == 0, final.stderr
    tracker, parents, children = runs(out)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    folder = out / "sets" / run_id
    assert sha256(folder / "set0" / "synthetic_set.safetensors") == ref_hash
    ref_folder = ref_out / "sets" / ref_parent.info.run_id
    assert sha256(folder / "accuracies.json") == sha256(ref_folder / "accuracies.json")
    assert parents[0].data.tags["sha256/accuracies.json"] == sha256(folder / "accuracies.json")
    for key in ("eval/ConvNet/acc", "eval/ConvNet/acc_std"):
        assert math.isclose(parents[0].data.metrics[key], ref_parent.data.metrics[key], abs_tol=0)
    losses = tracker.client.get_metric_history(children[0].info.run_id, "distill/loss")
    assert sorted(m.step for m in losses) == [0, 1, 2, 3]  # each iteration logged once
    networks = tracker.client.get_metric_history(children[0].info.run_id, "eval/ConvNet/model_acc")
    assert sorted(m.step for m in networks) == [0, 1]


@pytest.mark.slow
def test_a_tracking_store_lost_mid_run_loses_nothing(reference, tmp_path, data_root, capsys):
    """The store stops answering at iteration 2 (as ``Tracker`` reports a server that went
    away): one error line, the way to continue printed, and the resumed run is the
    uninterrupted one with every step logged once."""
    from bench.core.errors import TrackingError

    out = tmp_path / "out"
    original = Tracker.log_metrics

    def lost(self, run_id, metrics, step=0):
        if "distill/loss" in metrics and step == 2:
            raise TrackingError(f"tracking store {self.uri} stopped answering (ConnectionError)")
        return original(self, run_id, metrics, step)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Tracker, "log_metrics", lost)
        assert main(small_run(data_root, out)) == 2
    captured = capsys.readouterr()
    # one error line (the progress bars of what ran before also write to stderr)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: tracking store")
    assert "Traceback" not in captured.err
    _, parents, _ = runs(out)
    run_id = parents[0].info.run_id
    assert f"--resume {run_id}" in captured.out and "nothing computed is lost" in captured.out
    assert main(small_run(data_root, out, "--resume", run_id)) == 0
    tracker, parents, children = runs(out)
    set_file = out / "sets" / run_id / "set0" / "synthetic_set.safetensors"
    assert sha256(set_file) == reference[2]
    losses = tracker.client.get_metric_history(children[0].info.run_id, "distill/loss")
    assert sorted(m.step for m in losses) == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_loses_nothing(reference, tmp_path, data_root, capsys):
    """The second checkpoint write meets a full disk: one error line naming it, the partial file
    removed, the run FAILED with its resume command, the store intact; the resumed run is the
    uninterrupted one."""
    import errno
    import sqlite3

    import bench.run.checkpoint as checkpoint
    from bench.core.hashing import atomic_target

    out = tmp_path / "out"
    writes = []

    def full_disk(path, data):
        writes.append(path)
        if len(writes) < 2:
            return original(path, data)
        with atomic_target(Path(path)) as tmp:
            tmp.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    original = checkpoint.write_atomic
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "write_atomic", full_disk)
        assert main(small_run(data_root, out)) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0], captured.err
    assert "Traceback" not in captured.err
    _, parents, _ = runs(out)
    run_id = parents[0].info.run_id
    assert parents[0].info.status == "FAILED" and f"--resume {run_id}" in captured.out
    assert [p.name for p in (out / "checkpoints" / run_id).iterdir() if "tmp" in p.name] == []
    with sqlite3.connect(out / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert main(small_run(data_root, out, "--resume", run_id)) == 0
    set_file = out / "sets" / run_id / "set0" / "synthetic_set.safetensors"
    assert sha256(set_file) == reference[2]


def test_unreadable_data_is_named_not_called_damaged(tmp_path, data_root, capsys, monkeypatch):
    """Data this user may not read (PermissionError; as root, chmod cannot make it so, hence
    the patched loader) is named as such in one line, before any store exists."""
    import bench.data.real as real

    def denied(card, root, train, download):
        path = root / card.folder / "raw" / "train-images-idx3-ubyte"
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setitem(real._LOADERS, load_card("mnist").loader, denied)
    assert main(small_run(data_root, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: permission denied") and "train-images-idx3-ubyte" in err
    assert "re-download" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_store_locked_by_another_program_is_one_line(reference, tmp_path, data_root):
    """Another program (not a bench command) holds the SQLite store's write lock: one line
    saying so, within seconds, and nothing written to the store."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"db = sqlite3.connect({str(out / 'mlflow.db')!r}, isolation_level=None)\n"
         "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        result = cli(*small_run(data_root, out))
        seconds = time.perf_counter() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is locked by another process" in lines[0], result.stderr
    assert seconds < 60
    _, parents, _ = runs(out)
    assert [r.info.run_id for r in parents] == [reference[1].info.run_id]


def test_a_damaged_template_store_is_made_anew_not_copied(tmp_path, monkeypatch):
    """The cached empty store that new stores are copied from is checked against its recorded
    hash; a damaged one is rebuilt, and the new store works."""
    import sqlite3

    from bench.run.tracking import template_store

    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "cache"))
    template = template_store()
    good = template.read_bytes()
    template.write_bytes(os.urandom(len(good)))
    assert template_store() == template
    with sqlite3.connect(template) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT name FROM experiments").fetchall() == [("Default",)]
    tracker = Tracker(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}", tmp_path / "new")
    assert tracker.client.search_runs([tracker.experiment_id]) == []


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    """Every file the suite writes goes through ``write_atomic``/``atomic_target``: a write
    that fails (here a full disk) leaves the previous file whole and no temporary file."""
    from bench.core.hashing import atomic_target, write_atomic

    path = tmp_path / "record.json"
    write_atomic(path, "previous")
    with pytest.raises(OSError, match="No space left"):
        with atomic_target(path) as tmp:
            tmp.write_text("half of the new")
            raise OSError(28, "No space left on device")
    assert path.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    write_atomic(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == [
        "record.json"
    ]


@pytest.mark.slow
def test_a_second_writer_of_a_run_is_refused_and_a_dead_ones_lock_taken_over(
    tmp_path, data_root, monkeypatch, capsys
):
    """One run, one writer: while a live process holds a run's lock, a ``--resume`` of it is
    refused in one line naming the holder; once that process is gone the lock is taken over."""
    out = tmp_path / "killed"
    run_id = interrupted_run(tiny_run(data_root, out), 3, monkeypatch)
    capsys.readouterr()
    folder = out / "checkpoints" / run_id
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from bench.run.lock import RunLock; "
            f"lock = RunLock(sys.argv[1], {run_id!r}); lock.acquire(); print('held', flush=True); "
            "time.sleep(120)",
            str(folder),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(tiny_run(data_root, out, "--resume", run_id)) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            f"error: run {run_id} is being written by another process (pid {holder.pid} on "
            f"{__import__('socket').gethostname()} since "
            + line.split(" since ")[1].split(")")[0]
            + "); wait for it to end or stop it, then resume again"
        )
    finally:
        holder.kill()
        holder.wait()
    _, parents, _ = runs(out)
    assert parents[0].info.status == "FAILED"  # the refused resume changed nothing
    assert main(tiny_run(data_root, out, "--resume", run_id)) == 0  # a dead holder's lock
    tracker, parents, children = runs(out)
    assert parents[0].info.status == "FINISHED"
    losses = tracker.client.get_metric_history(children[0].info.run_id, "distill/loss")
    assert sorted(m.step for m in losses) == list(range(6))  # no step logged twice


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals reach it only"
)
def test_after_an_interrupt_both_signals_stay_ignored_and_otherwise_are_restored():
    """A second Ctrl-C 50 ms after the first once arrived after the clean-up, while the CLI was
    printing the resume command, and killed the process by SIGINT (rc -2) instead of exit 130."""
    from bench.run.runner import signals_as_interrupt

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with signals_as_interrupt():
            assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
        assert {s: signal.getsignal(s) for s in before} == before
        with pytest.raises(KeyboardInterrupt):
            with signals_as_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler raises within this
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)  # ignored: the test goes on
        with pytest.raises(UserError):
            with signals_as_interrupt():
                raise UserError("not an interrupt")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # the state before that block
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def test_a_reader_that_goes_away_is_not_a_traceback():
    """``bench list | head -1``: the closed pipe ends the command quietly (exit 1, as Python's
    own recipe for SIGPIPE does), not with a BrokenPipeError traceback. The pipe's read end is
    closed before the command starts, so its first write fails whatever the timing."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bench", "list"],
            cwd=REPO_ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
