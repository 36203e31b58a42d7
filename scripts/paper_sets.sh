#!/usr/bin/env bash
# Start the paper-protocol sets the ledger lacks, in the background, one set per core:
#
#   scripts/paper_sets.sh STORE RECIPE...     e.g. scripts/paper_sets.sh ~/paper-runs gm-mnist-ipc1 gm-fashionmnist-ipc1
#
# For each recipe in turn, `bench plan --missing kept` names the sets an older version of the
# recipe kept whose distillation is the current one's: they are evaluated again (reproduce
# --distilled-from). Then `bench plan --missing` names the sets its paper design still lacks
# in leaderboards/runs, and `bench sweep --per-set` computes them niced, single-threaded, two
# (or $WORKERS) at a time, into STORE (keep it outside the checkout). Run it again after a
# cut-off: the sweep continues unfinished sets with --resume and skips finished ones. When sets
# finish: python -m bench leaderboard --ingest --runs STORE, then commit leaderboards/.
# The job runs in its own process group, printed on start: kill -STOP/-CONT -PGID pauses it
# (while timing anything), kill -TERM -PGID stops it (the sets are marked FAILED, resumable).
set -euo pipefail
store=${1:?usage: scripts/paper_sets.sh STORE RECIPE...}
shift
cd "$(dirname "$0")/.."
mkdir -p "$store"
workers=${WORKERS:-$(nproc)}
run() {
  for recipe in "$@"; do
    # sets an older recipe version kept (bench plan --missing kept): evaluated again, not distilled
    read -r -a kept <<< "$(python -m bench plan "$recipe" --missing kept)" || true
    if [ ${#kept[@]} -gt 2 ]; then
      records=()
      for record in "${kept[@]:2}"; do records+=(--distilled-from "$record"); done
      nice -n 10 python -m bench reproduce "$recipe" --budget paper --sets "${kept[1]}" \
        "${records[@]}" --out "$store" --device cpu
    fi
    missing=$(python -m bench plan "$recipe" --missing | awk '{print $2}')
    [ -n "$missing" ] || continue
    nice -n 10 python -m bench sweep "$recipe" --budget paper --per-set --sets "$missing" \
      --workers "$workers" --threads 1 --out "$store" --device cpu
  done
}
export -f run
setsid bash -c 'run "$@"' paper-sets "$@" > "$store/paper-sets.log" 2>&1 < /dev/null &
echo "paper sets started in the background: process group $!, log $store/paper-sets.log"
