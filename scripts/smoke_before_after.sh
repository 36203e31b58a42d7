#!/usr/bin/env bash
# End-to-end time of the README's main job (gm-mnist-ipc1 --budget smoke) at a BASE commit and
# at this checkout, interleaved (base, this, base, this, ...), with the load average before each
# run and the accuracies each run reports (they must be identical).
#   scripts/smoke_before_after.sh BASE [ROUNDS] [DATA_ROOT]      (defaults: 2, ../shared/datasets)
set -euo pipefail
base="${1:?usage: scripts/smoke_before_after.sh BASE [ROUNDS] [DATA_ROOT]}"
rounds="${2:-2}"
cd "$(dirname "$0")/.."
here="$PWD"
data_root="$(cd "${3:-../shared/datasets}" && pwd)"
py="${PYTHON:-python}"
work="$(mktemp -d)"
git worktree add --detach "$work/base" "$base" > /dev/null
trap 'git worktree remove --force "$work/base"; rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  for side in base this; do
    dir="$here"; [ "$side" = base ] && dir="$work/base"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    start=$(date +%s.%N)
    (cd "$dir" && PYTHONPATH="$dir" "$py" -m bench reproduce gm-mnist-ipc1 --budget smoke \
      --data-root "$data_root" --out "$work/out-$side-$round" > "$work/$side-$round.log" 2>&1)
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    accuracy="$(grep -o 'ConvNet: .*' "$work/$side-$round.log" | head -1)"
    printf '%s round %s: %.0f s (load %s) %s\n' "$side" "$round" "$seconds" "$load" "$accuracy"
  done
done
