#!/usr/bin/env bash
# The prepared GPU check (issue 20): one command, everything written under one output folder.
#
#   scripts/device_check.sh OUT [--device cuda] [--data-root DIR] [--tiny]
#
# 1. installs the wheels in .whl/ (scripts/fetch_device_wheels.sh) when MLflow is missing;
# 2. python -m bench speed gm: distillation loop, evaluation (eager vs compiled test pass),
#    batched vs sequential evaluation -> OUT/bench/gm-<commit>.json;
# 3. one smoke reproduction of every method family (gm, random, herding, whole, pc-gm with the
#    dense network, gtn, mtt) -> OUT/mlflow.db, logs in OUT/logs/;
# 4. the paper protocol of gm-mnist-ipc1 with its 5 synthetic sets at once (--parallel-sets 5)
#    and each set's evaluation networks batched (eval.networks_per_batch=20); both speed only
#    -> the same store.
# --tiny shrinks every step to seconds of work (the CPU test of this script:
# `scripts/device_check.sh /tmp/check --device cpu --tiny`). A step that fails is reported and
# the next one runs; the exit status is the number of failed steps. Families whose data is not
# under --data-root are skipped with a message.
set -uo pipefail
out="${1:?usage: scripts/device_check.sh OUT [--device cuda] [--data-root DIR] [--tiny]}"
shift
device=cuda data_root=../shared/datasets tiny=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --tiny) tiny=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MLFLOW_TRACKING_URI="sqlite:///$out/mlflow.db"
py="${PYTHON:-python}"
if ! "$py" -c "import mlflow, kornia" 2>/dev/null; then
  "$py" -m pip install --no-index --find-links .whl mlflow-skinny sqlalchemy alembic kornia \
    > "$out/logs/pip.log" 2>&1 || { echo "wheels missing: run scripts/fetch_device_wheels.sh"; exit 1; }
fi
failed=0
step() {  # step NAME COMMAND...: run, log to OUT/logs/NAME.log, report time and status
  local name="$1"; shift
  local start=$SECONDS
  if "$@" > "$out/logs/$name.log" 2>&1; then
    echo "ok     $name ($((SECONDS - start)) s)"
  else
    echo "FAILED $name ($((SECONDS - start)) s): see $out/logs/$name.log"; failed=$((failed + 1))
  fi
}
common=(--device "$device" --data-root "$data_root" --out "$out")
if [ "$tiny" = 1 ]; then
  bench=(--iterations 1 --repeats 1 --epochs 2 --networks 2 --variants batched)
  small=(--set method.iterations=2 --set eval.num_eval=1 --set eval.epochs=1)
  coreset=(--set eval.num_eval=1 --set eval.epochs=0)
  experts=(--set method.num_experts=1 --set method.expert_train_epochs=1)
  paper=(--budget smoke --set method.iterations=2 --set eval.num_eval=2 --set eval.epochs=1
         --set eval.num_exp=2 --set eval.networks_per_batch=2 --parallel-sets 2)
else
  bench=(--repeats 3)
  small=() coreset=() experts=()
  paper=(--budget paper --set eval.networks_per_batch=20 --set eval.compile_test=true
         --parallel-sets 5)
fi
echo "device check on $device, output in $out ($(date -Is))"
step speed-gm "$py" -m bench speed gm --device "$device" --data-root "$data_root" \
  --out "$out/bench" "${bench[@]}"
step smoke-gm "$py" -m bench reproduce gm-mnist-ipc1 --budget smoke "${common[@]}" "${small[@]}"
step smoke-random "$py" -m bench reproduce random-mnist-ipc1 --budget smoke "${common[@]}" "${coreset[@]}"
step smoke-herding "$py" -m bench reproduce herding-mnist-ipc1 --budget smoke "${common[@]}" "${coreset[@]}"
step smoke-whole "$py" -m bench reproduce whole-mnist --budget smoke "${common[@]}" "${coreset[@]}"
step smoke-pc-gm "$py" -m bench reproduce pc-gm-mnist-pytorch-2layer --budget smoke "${common[@]}" "${small[@]}"
step smoke-gtn "$py" -m bench reproduce gtn-gm-mnist --budget smoke "${common[@]}" "${small[@]}"
if [ -d "$data_root/CIFAR-10-images" ] || [ -d "$data_root/cifar-10-batches-py" ]; then
  cifar=(); [ -d "$data_root/cifar-10-batches-py" ] || cifar=(--dataset cifar10-jpeg)
  step smoke-mtt "$py" -m bench reproduce mtt-cifar10-ipc1 --budget smoke "${cifar[@]}" \
    "${common[@]}" "${small[@]}" "${experts[@]}"
else
  echo "skip   smoke-mtt: no CIFAR-10 under $data_root"
fi
step paper-gm-mnist-ipc1 "$py" -m bench reproduce gm-mnist-ipc1 "${paper[@]}" "${common[@]}"
echo "done: $failed failed step(s); store $MLFLOW_TRACKING_URI"
exit "$failed"
