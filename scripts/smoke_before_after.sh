#!/usr/bin/env bash
# End-to-end time of the README's main job (gm-mnist-ipc1 --budget smoke) at a BASE commit and
# at this checkout, interleaved (base, this, base, this, ...), with the load average before each
# run and the accuracy each run reports (it must be the same on both sides). Writes
# OUT/smoke-before-after-<commit>.json (bench.speed.benchmark.write_record).
#   scripts/smoke_before_after.sh BASE [ROUNDS] [DATA_ROOT] [OUT]
#   (defaults: 2, ../shared/datasets, leaderboards/benchmarks)
set -euo pipefail
base="${1:?usage: scripts/smoke_before_after.sh BASE [ROUNDS] [DATA_ROOT] [OUT]}"
rounds="${2:-2}"
cd "$(dirname "$0")/.."
here="$PWD"
data_root="$(cd "${3:-../shared/datasets}" && pwd)"
out="${4:-leaderboards/benchmarks}"
py="${PYTHON:-python}"
work="$(mktemp -d)"
git worktree add --detach "$work/base" "$base" > /dev/null
trap 'git worktree remove --force "$work/base"; rm -rf "$work"' EXIT
: > "$work/rows.tsv"
for round in $(seq "$rounds"); do
  for side in base this; do
    dir="$here"; [ "$side" = base ] && dir="$work/base"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    start=$(date +%s.%N)
    (cd "$dir" && PYTHONPATH="$dir" "$py" -m bench reproduce gm-mnist-ipc1 --budget smoke \
      --data-root "$data_root" --out "$work/out-$side-$round" > "$work/$side-$round.log" 2>&1)
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    accuracy="$(grep -o 'measured : .*' "$work/$side-$round.log" | head -1 | cut -c12-)"
    printf '%s round %s: %.0f s (load %s) accuracy %s\n' "$side" "$round" "$seconds" "$load" "$accuracy"
    printf '%s\t%s\t%s\t%s\t%s\n' "$side" "$round" "$seconds" "$load" "$accuracy" >> "$work/rows.tsv"
  done
done
base_commit="$(git -C "$work/base" rev-parse HEAD)"
"$py" - "$work/rows.tsv" "$out" "$base_commit" <<'PY'
import statistics, sys
from pathlib import Path
import torch
from bench.speed.benchmark import write_record
rows = [line.split("\t") for line in Path(sys.argv[1]).read_text().splitlines()]
runs = [{"side": s, "round": int(r), "seconds": float(t), "load_average_1min": float(l),
         "accuracy": a} for s, r, t, l, a in rows]
medians = {side: statistics.median(x["seconds"] for x in runs if x["side"] == side)
           for side in ("base", "this")}
write_record(Path(sys.argv[2]), "smoke-before-after", torch.device("cpu"),
             job="python -m bench reproduce gm-mnist-ipc1 --budget smoke (end to end)",
             base_commit=sys.argv[3], median_seconds=medians, runs=runs)
PY
