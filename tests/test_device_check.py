"""The prepared GPU check on the CPU: scripts/device_check.sh --tiny reads gzipped data as the
GPU machine gets it, packs its output folder, and scripts/import_device_check.sh brings that
into a leaderboards folder."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.core import provenance
from bench.core.paths import REPO_ROOT


def run_script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}  # the scripts' python: this environment's
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / name), *map(str, args)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


def steps(out: Path) -> dict[str, str]:
    """Each step's status in ``OUT/steps.tsv``, whose runs each begin with a ``# commit`` line."""
    header, *lines = (out / "steps.tsv").read_text().splitlines()
    assert header == "step\tstatus\tseconds" and lines[0].startswith("# commit ")
    return {line.split("\t")[0]: line.split("\t")[1] for line in lines if line[0] != "#"}


def test_failing_steps_are_counted_the_next_one_runs_and_a_rerun_appends(tmp_path):
    out = tmp_path / "out"
    done = run_script(
        "device_check.sh", out, "--device", "cpu", "--tiny", "--data-root", tmp_path / "empty",
        "--steps", "smoke-gm,smoke-random",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert steps(out) == {"smoke-gm": "FAILED", "smoke-random": "FAILED"}
    log = (out / "logs" / "smoke-gm.log").read_text()
    assert log.startswith("error: ") and "MNIST" in log and "Traceback" not in log
    unknown = run_script("device_check.sh", out, "--steps", "smoke-gm,smoke-mnist")
    assert unknown.returncode == 2 and "unknown step smoke-mnist" in unknown.stderr
    rerun = run_script(
        "device_check.sh", out, "--device", "cpu", "--tiny", "--data-root", tmp_path / "empty",
        "--steps", "smoke-random",
    )  # fmt: skip
    assert rerun.returncode == 1  # and the first run's lines are kept:
    assert (out / "steps.tsv").read_text().count("\nsmoke-random\tFAILED\t") == 2


def test_a_copy_without_git_reports_the_recorded_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "CHECKOUT", tmp_path)  # files only, as the GPU machine gets
    monkeypatch.setenv("DISTILLBENCH_GIT_COMMIT", "0123abcd-dirty")
    assert provenance.git_commit() == "0123abcd-dirty"
    (tmp_path / ".git").mkdir()  # a checkout answers for itself, whatever the variable says
    assert provenance.git_commit() == "unknown"


@pytest.mark.slow
def test_tiny_check_on_gzipped_data_archives_and_imports(tmp_path, data_root):
    gz_root = tmp_path / "data" / "MNIST" / "raw"
    gz_root.mkdir(parents=True)
    for idx in (data_root / "MNIST" / "raw").glob("*-ubyte"):
        with open(idx, "rb") as src, gzip.open(gz_root / f"{idx.name}.gz", "wb", 1) as dst:
            shutil.copyfileobj(src, dst)
    out, archive = tmp_path / "check", tmp_path / "back" / "device-check.tar.gz"
    done = run_script(
        "device_check.sh", out, "--device", "cpu", "--tiny", "--data-root", tmp_path / "data",
        "--steps", "smoke-gm,paper-gm-mnist-ipc1", "--archive", archive,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert steps(out) == {"smoke-gm": "ok", "paper-gm-mnist-ipc1": "ok"}
    with tarfile.open(archive) as packed:
        names = packed.getnames()
    root = str(out).lstrip("/")
    assert f"{root}/mlflow.db" in names and f"{root}/steps.tsv" in names
    assert not any(n.startswith(f"{root}/data") or "/checkpoints" in n for n in names)

    shutil.move(out, tmp_path / "ran")  # the archive unpacks where it was made
    boards = tmp_path / "boards"
    done = run_script("import_device_check.sh", archive, boards)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in (boards / "runs").glob("*.json")]
    paper = [r for r in records if r["tags"].get("recipe") == "gm-mnist-ipc1"]
    assert len(paper) == 2 and all(r["status"] == "FINISHED" for r in paper)
    assert {r["params"]["eval.num_exp"] for r in paper} == {"1", "2"}
    (tsv,) = (boards / "benchmarks").glob("device-check-*-steps.tsv")
    assert tsv.read_text() == (tmp_path / "ran" / "steps.tsv").read_text()
    again = run_script("import_device_check.sh", archive, boards)
    assert again.returncode == 1 and "exists" in again.stderr
