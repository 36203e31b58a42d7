"""``python -m bench sweep``: concurrent tasks lose no run, a killed sweep resumes only what is
missing, failed tasks are retried from their run, and Ray with a tracking server does the same."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core.paths import REPO_ROOT
from bench.run.tracking import Tracker

pytestmark = pytest.mark.slow

# a tiny protocol: 2 outer iterations on 16 real images per class, 1 network, 2 epochs
TINY = [
    "method.iterations=2",
    "method.batch_real=16",
    "eval.num_exp=1",
    "eval.num_eval=1",
    "eval.epochs=1",
]


def sweep_args(data_root: Path, out: Path, *recipes_and_options: str) -> list[str]:
    args = [sys.executable, "-m", "bench", "sweep", *recipes_and_options]
    args += ["--data-root", str(data_root), "--out", str(out), "--device", "cpu"]
    for item in TINY:
        args += ["--set", item]
    return args


def run_sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)


def parent_runs(uri: str, out: Path) -> list:
    tracker = Tracker(uri, out)
    found = tracker.client.search_runs([tracker.experiment_id])
    return [r for r in found if "mlflow.parentRunId" not in r.data.tags]


def assert_one_finished_run_per_task(runs: list, tasks: set[tuple[str, str]]) -> None:
    assert {(r.data.tags["recipe"], r.data.tags["seed"]) for r in runs} == tasks
    assert len(runs) == len(tasks)  # no duplicate, none lost
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all("eval/ConvNet/acc" in r.data.metrics for r in runs)


FOUR_TASKS = {(r, s) for r in ("gm-mnist-ipc1", "gm-fashionmnist-ipc1") for s in ("0", "1")}


def test_local_sweep_with_four_workers_on_sqlite_loses_no_run(tmp_path, data_root):
    args = sweep_args(
        data_root, tmp_path, "gm-mnist-ipc1", "gm-fashionmnist-ipc1", "--seeds", "0", "1"
    )
    result = run_sweep(*args, "--workers", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 new" in result.stdout
    assert_one_finished_run_per_task(
        parent_runs(f"sqlite:///{tmp_path}/mlflow.db", tmp_path), FOUR_TASKS
    )
    again = run_sweep(*args, "--workers", "4")
    assert again.returncode == 0 and "4 already FINISHED (skipped)" in again.stdout


def test_per_set_sweep_runs_one_shard_per_set_and_the_full_runs_sets(tmp_path, data_root):
    """``--per-set``: one task per synthetic set, each a shard with the full run's seeds (the
    same set files as ``reproduce`` in one go); a second sweep skips them all."""
    args = sweep_args(data_root, tmp_path, "gm-mnist-ipc1", "--per-set", "--workers", "2")
    args += ["--set", "eval.num_exp=2"]  # after TINY's eval.num_exp=1: the last one wins
    result = run_sweep(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 new" in result.stdout
    runs = parent_runs(f"sqlite:///{tmp_path}/mlflow.db", tmp_path)
    assert sorted(r.data.tags["sets"] for r in runs) == ["0", "1"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert "2 already FINISHED (skipped)" in run_sweep(*args).stdout
    whole = tmp_path / "whole"
    reproduce = [sys.executable, "-m", "bench", "reproduce", "gm-mnist-ipc1"]
    reproduce += ["--data-root", str(data_root), "--out", str(whole), "--device", "cpu"]
    for item in [*TINY, "eval.num_exp=2"]:
        reproduce += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # as the sweep's tasks (--threads 1)
    done = subprocess.run(reproduce, cwd=REPO_ROOT, env=env, capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr
    digests = {}
    for folder in [*(tmp_path / "sets").glob("*/set*"), *(whole / "sets").glob("*/set*")]:
        data = (folder / "synthetic_set.safetensors").read_bytes()
        digests.setdefault(folder.name, set()).add(hashlib.sha256(data).hexdigest())
    assert sorted(digests) == ["set0", "set1"]
    assert all(len(found) == 1 for found in digests.values())  # byte-identical


def test_killed_sweep_resumes_only_what_is_missing(tmp_path, data_root):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = sweep_args(data_root, tmp_path, "gm-mnist-ipc1", "--seeds", "0", "1", "--workers", "1")
    sweep = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # kill it (and its task) once the first task finished and the second one started
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            runs = parent_runs(uri, tmp_path) if (tmp_path / "mlflow.db").exists() else []
            if len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED", "RUNNING"}:
                break
            assert sweep.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("the sweep never reached its second task")
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    before = {r.info.status: r for r in parent_runs(uri, tmp_path)}
    assert set(before) == {"FINISHED", "RUNNING"}  # the killed task's run was left RUNNING

    result = run_sweep(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 already FINISHED (skipped), 1 to resume, 0 new" in result.stdout
    after = {r.info.run_id: r for r in parent_runs(uri, tmp_path)}
    assert_one_finished_run_per_task(
        list(after.values()), {("gm-mnist-ipc1", "0"), ("gm-mnist-ipc1", "1")}
    )
    finished, killed = before["FINISHED"], before["RUNNING"]
    assert after[finished.info.run_id].info.end_time == finished.info.end_time  # not run again
    assert "resumed_on" in after[killed.info.run_id].data.tags  # continued, not restarted


def test_failed_task_is_retried_from_its_run_then_reported(tmp_path, data_root):
    args = sweep_args(data_root, tmp_path, "gm-mnist-ipc1", "--set", "method.lr_img=1e38")
    result = run_sweep(*args, "--retries", "1")
    assert result.returncode == 1
    assert "retry   gm-mnist-ipc1 seed 0" in result.stdout
    assert "FAILED  gm-mnist-ipc1 seed 0" in result.stdout
    runs = parent_runs(f"sqlite:///{tmp_path}/mlflow.db", tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"]  # one run, tried twice
    log = (tmp_path / "sweep-logs" / "gm-mnist-ipc1-seed0.log").read_text()
    assert f"--resume {runs[0].info.run_id}" in log
    assert log.count("became nan") == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not come up in {seconds} s")


def test_ray_cluster_sweep_logs_every_task_to_one_tracking_server(tmp_path, data_root):
    bin_dir = Path(sys.executable).parent
    mlflow_port, ray_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            bin_dir / "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ray_env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    ray = [str(bin_dir / "ray")]
    try:
        subprocess.run(
            [*ray, "start", "--head", "--num-cpus", "2", "--port", str(ray_port)]
            + ["--include-dashboard=false"],
            check=True,
            capture_output=True,
            env=ray_env,
        )
        uri = f"http://127.0.0.1:{mlflow_port}"
        wait_for(f"{uri}/health", 120)
        args = sweep_args(
            data_root,
            tmp_path / "out",
            "gm-mnist-ipc1",
            "gm-fashionmnist-ipc1",
            "--seeds",
            "0",
            "1",
        )
        result = run_sweep(
            *args,
            "--executor",
            "ray",
            "--ray-address",
            f"127.0.0.1:{ray_port}",
            "--tracking-uri",
            uri,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        runs = parent_runs(uri, tmp_path)
        assert_one_finished_run_per_task(runs, FOUR_TASKS)
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True, env=ray_env)
        server.terminate()
        server.wait(timeout=60)


def test_ray_cluster_needs_a_tracking_server(tmp_path, data_root):
    args = sweep_args(data_root, tmp_path, "gm-mnist-ipc1")
    result = run_sweep(*args, "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert result.returncode == 2
    assert "needs a tracking server" in result.stderr and "mlflow server" in result.stderr
