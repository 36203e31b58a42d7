"""Where a run came from: git commit, package versions, hardware. Logged as MLflow tags."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata

import torch

from bench.core.paths import CHECKOUT

PACKAGES = ("torch", "torchvision", "mlflow", "numpy", "scipy", "safetensors")


def git_commit() -> str:
    """``HEAD``'s hash, suffixed ``-dirty`` when tracked files have uncommitted changes;
    ``unknown`` outside a git checkout, and for an installed copy (whose site-packages may lie
    inside some other repository, whose commit says nothing about this code). A copy of a
    checkout's files without ``.git`` (the GPU check's machine) reports the commit in
    ``$DISTILLBENCH_GIT_COMMIT``, which ``scripts/device_check.sh`` sets from the one
    ``scripts/prepare_device_check.sh`` recorded."""
    if CHECKOUT is None:
        return "unknown"
    copied = os.environ.get("DISTILLBENCH_GIT_COMMIT")
    if copied and not (CHECKOUT / ".git").exists():
        return copied
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=CHECKOUT, check=True, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=CHECKOUT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty.strip() else "")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on, and ``constraints``: the
    SHA-256 of the checkout's ``constraints.txt`` (the exact versions CI installs; ``none``
    for an installed copy), which names the whole environment one can reinstall."""
    versions = {"python": platform.python_version(), "constraints": constraints_hash()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def constraints_hash() -> str:
    """``sha256:<hex>`` of ``constraints.txt`` in the checkout, else ``none``."""
    path = CHECKOUT / "constraints.txt" if CHECKOUT is not None else None
    if path is None or not path.is_file():
        return "none"
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (or what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> str:
    """One line such as ``cpu: 2 threads, Intel(R) Xeon(R) ...`` or ``cuda: NVIDIA H200``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}; host {os.cpu_count()} cores"
    return f"cpu: {torch.get_num_threads()} threads, {cpu_name()}"


def provenance_tags(device: torch.device) -> dict[str, str]:
    """MLflow tags: ``git_commit``, ``hardware`` and ``version.<package>``."""
    tags = {"git_commit": git_commit(), "hardware": hardware(device)}
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    return tags
