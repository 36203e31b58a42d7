#!/usr/bin/env bash
# Download, here, the wheels the GPU check needs on a machine without network access
# (CPython 3.12, manylinux x86-64; PyTorch 2.11, torchvision, scipy, safetensors, tabulate,
# tqdm, matplotlib and filelock are installed there, MLflow and kornia are not).
# Usage: scripts/fetch_device_wheels.sh [DEST]   (default .whl/, ignored by git)
# Install there with: pip install --no-index --find-links .whl mlflow-skinny sqlalchemy alembic kornia
set -euo pipefail
dest="${1:-.whl}"
mkdir -p "$dest"
target=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux_2_28_x86_64 --platform any -d "$dest")
# the MLflow client and its SQLite store (bench/run/tracking.py: sqlite:///<out>/mlflow.db),
# with their dependencies; not the full mlflow (server, pandas, pyarrow, scikit-learn)
python -m pip download "${target[@]}" "mlflow-skinny>=2.12" sqlalchemy alembic
# kornia (ZCA whitening of MTT) without its dependencies: torch is installed there
python -m pip download "${target[@]}" --no-deps kornia kornia_rs
du -sh "$dest"
