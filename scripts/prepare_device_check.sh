#!/usr/bin/env bash
# Prepare, here, what the GPU check (scripts/device_check.sh) needs on a machine that can reach
# nothing and is sent only this checkout (../shared stays behind), in .device/ (ignored by git):
#   .device/wheels/      the packages missing there (CPython 3.12, manylinux x86-64: PyTorch 2.11,
#                        torchvision, scipy, safetensors, tabulate, tqdm, matplotlib, filelock and
#                        statsmodels are installed there; MLflow, pydantic and kornia are not)
#   .device/data/MNIST/  MNIST's IDX files gzipped (11 MiB instead of 53; device_check.sh unpacks)
#   .device/COMMIT       this checkout's commit, for the runs' provenance where .git is not sent
# Usage: scripts/prepare_device_check.sh [DATA_ROOT]   (default ../shared/datasets)
# Then, there, with .device sent along (docs/speed.md, "The GPU check"):
#   scripts/device_check.sh /tmp/device-check --data-root .device/data --archive device-check.tar.gz
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${1:-../shared/datasets}"
dest=.device
rm -rf "$dest" && mkdir -p "$dest/wheels" "$dest/data/MNIST/raw"
target=(--quiet --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux_2_28_x86_64 --platform any -d "$dest/wheels")
# the MLflow client and its SQLite store (bench/run/tracking.py: sqlite:///<out>/mlflow.db),
# with their dependencies; not the full mlflow (server, pandas, pyarrow, scikit-learn)
python -m pip download "${target[@]}" "mlflow-skinny>=2.12" sqlalchemy alembic "pydantic>=2.6"
# kornia (ZCA whitening of MTT) without its dependencies: torch is installed there
python -m pip download "${target[@]}" --no-deps kornia kornia_rs
for f in "$data_root"/MNIST/raw/*-ubyte; do gzip -c "$f" > "$dest/data/MNIST/raw/$(basename "$f").gz"; done
commit="$(git rev-parse HEAD)"
[ -z "$(git status --porcelain --untracked-files=no)" ] || commit="$commit-dirty"
echo "$commit" > "$dest/COMMIT"
mib() { echo $(( ($1 + 1048575) / 1048576 )); }
own=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
echo "$dest: $(mib "$own") MiB (commit $commit); with the tracked files $(mib $((own + tree))) MiB of the 64 a device call carries"
