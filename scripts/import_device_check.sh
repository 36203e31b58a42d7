#!/usr/bin/env bash
# Bring a GPU check's results (scripts/device_check.sh --archive FILE) into the leaderboards:
# unpacks the archive at the absolute path it was made at (its MLflow store names its artifacts
# by that path), adds the store's finished runs to the run records and rebuilds the tables
# ("${PYTHON:-python}" -m bench leaderboard --ingest), and copies the speed benchmark and the steps' times to
# <leaderboards>/benchmarks/device-check-<commit>-{gm.json,steps.tsv}.
# Usage: scripts/import_device_check.sh ARCHIVE [LEADERBOARDS]   (default: leaderboards/;
# $PYTHON, else python, runs the suite)
set -euo pipefail
archive="$(realpath "${1:?usage: scripts/import_device_check.sh ARCHIVE [LEADERBOARDS]}")"
cd "$(dirname "$0")/.."
boards="$(realpath -m "${2:-leaderboards}")"
root="/$(tar -tzf "$archive" | awk 'NR == 1 { sub(/\/+$/, ""); print }')"  # reads on: no SIGPIPE
if [ -e "$root" ]; then
  echo "error: $root exists; move it away (the archive unpacks there) and run again" >&2; exit 1
fi
tar -xzf "$archive" -C /
commit="$(awk '/^# commit / { sub(/;$/, "", $3); print substr($3, 1, 12); exit }' "$root/steps.tsv")"
"${PYTHON:-python}" -m bench leaderboard --tracking-uri "sqlite:///$root/mlflow.db" --output "$boards"
mkdir -p "$boards/benchmarks"
cp "$root/steps.tsv" "$boards/benchmarks/device-check-$commit-steps.tsv"
for f in "$root"/bench/gm-*.json; do
  [ -f "$f" ] && cp "$f" "$boards/benchmarks/device-check-$commit-gm.json"
done
echo "imported $root (commit $commit) into $boards"
