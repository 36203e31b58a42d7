#!/usr/bin/env bash
# The prepared GPU check (issue 20): one command, everything written under one output folder.
#
#   scripts/device_check.sh OUT [--device cuda] [--data-root DIR] [--tiny] [--steps A,B]
#                               [--archive FILE]
#
# On the GPU machine, after scripts/prepare_device_check.sh here (docs/speed.md, "The GPU check"):
#   scripts/device_check.sh /tmp/device-check --data-root .device/data --archive device-check.tar.gz
#
# 0. installs the wheels in .device/wheels when MLflow or kornia is missing; unpacks gzipped
#    data (*.gz under --data-root) into OUT/data and reads it from there;
# 1. paper-gm-mnist-ipc1: the paper protocol of gm-mnist-ipc1 with its 5 synthetic sets at once
#    (--parallel-sets 5) and each set's evaluation networks batched
#    (eval.networks_per_batch=20); both speed only -> OUT/mlflow.db, logs in OUT/logs/. First:
#    it is the check's purpose, a published number judged;
# 2. speed-gm: python -m bench speed gm: distillation loop, evaluation (eager vs compiled test
#    pass), batched vs sequential evaluation -> OUT/bench/gm-<commit>.json;
# 3. smoke-*: one smoke reproduction of every method family (gm, random, herding, whole, pc-gm
#    with the dense network, gtn; mtt after experts-mtt makes its experts in OUT/experts, where
#    CIFAR-10 is under the data root) -> the same store.
# Each step's status and seconds are appended to OUT/steps.tsv. --steps runs only the named steps
# (a rerun of what failed or did not fit). --archive packs OUT into one .tar.gz that keeps OUT's
# absolute path, after every step, so that a command stopped at its time limit still leaves the
# finished steps (without the unpacked data, the experts, the checkpoints and sets/, the local
# copies of the store's artifacts: the device tool returns files of 16 MiB at most), for
# scripts/import_device_check.sh. --tiny shrinks every step to seconds of work (the CPU test of
# this script, tests/test_device_check.py). A step that fails is reported and the next one runs;
# the exit status is the number of failed steps. $PYTHON runs the suite (default python3).
set -uo pipefail
out="${1:?usage: scripts/device_check.sh OUT [--device cuda] [--data-root DIR] [--tiny] [--steps A,B] [--archive FILE]}"
shift
device=cuda data_root="" tiny=0 steps="" archive=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --data-root) data_root="$(realpath -m "$2")"; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --steps) steps=",$2,"; shift 2 ;;
    --archive) archive="$(realpath -m "$2")"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
names=,paper-gm-mnist-ipc1,speed-gm,smoke-gm,smoke-random,smoke-herding,smoke-whole,smoke-pc-gm,smoke-gtn,experts-mtt,smoke-mtt,
for name in ${steps//,/ }; do
  [[ "$names" == *",$name,"* ]] || { echo "unknown step $name; steps: ${names:1:-1}" >&2; exit 2; }
done
out="$(realpath -m "$out")"
mkdir -p "$out/logs"
cd "$(dirname "$0")/.."
data_root="${data_root:-$(realpath -m ../shared/datasets)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MLFLOW_TRACKING_URI="sqlite:///$out/mlflow.db"
# the device is sent the files, not .git: the runs' commit is the one prepare_device_check.sh saw
if ! git rev-parse HEAD > /dev/null 2>&1 && [ -f .device/COMMIT ]; then
  export DISTILLBENCH_GIT_COMMIT="$(cat .device/COMMIT)"
fi
py="${PYTHON:-python3}"
if ! "$py" -c "import mlflow, kornia" 2>/dev/null; then
  "$py" -m pip install --no-index --find-links .device/wheels mlflow-skinny sqlalchemy alembic \
    pydantic kornia > "$out/logs/pip.log" 2>&1 \
    || { echo "wheels missing: run scripts/prepare_device_check.sh and carry .device"; exit 1; }
fi
if [ -n "$(find "$data_root" -name '*.gz' 2>/dev/null | head -1)" ]; then
  while IFS= read -r f; do
    rel="${f#"$data_root"/}"
    mkdir -p "$out/data/$(dirname "$rel")"
    gunzip -c "$f" > "$out/data/${rel%.gz}"
  done < <(find "$data_root" -name '*.gz')
  data_root="$out/data"
fi
failed=0
provenance="$("$py" -c 'import sys, torch; from bench.core.provenance import git_commit, hardware
print(f"commit {git_commit()}; {hardware(torch.device(sys.argv[1]))}")' "$device" 2>&1 | tail -1)"
[ -f "$out/steps.tsv" ] || printf 'step\tstatus\tseconds\n' > "$out/steps.tsv"
printf '# %s; started %s\n' "$provenance" "$(date -Is)" >> "$out/steps.tsv"
pack() {  # OUT into --archive, as far as it has come
  [ -n "$archive" ] || return 0
  mkdir -p "$(dirname "$archive")"
  local skip=(data experts checkpoints sets)
  tar -czf "$archive.part" -C / "${skip[@]/#/--exclude=${out#/}/}" "${out#/}" \
    && mv "$archive.part" "$archive"
}
step() {  # step NAME COMMAND...: run, log to OUT/logs/NAME.log, report time and status, pack
  local name="$1"; shift
  if [ -n "$steps" ] && [[ "$steps" != *",$name,"* ]]; then return; fi
  local start=$SECONDS status=ok
  if ! "$@" > "$out/logs/$name.log" 2>&1; then status=FAILED; failed=$((failed + 1)); fi
  local seconds=$((SECONDS - start))
  printf '%s\t%s\t%s\n' "$name" "$status" "$seconds" >> "$out/steps.tsv"
  if [ "$status" = ok ]; then echo "ok     $name ($seconds s)"
  else echo "FAILED $name ($seconds s): see $out/logs/$name.log"; fi
  pack
}
common=(--device "$device" --data-root "$data_root" --out "$out")
if [ "$tiny" = 1 ]; then
  bench=(--iterations 1 --repeats 1 --epochs 2 --networks 2 --variants batched)
  small=(--set method.iterations=2 --set eval.num_eval=1 --set eval.epochs=1)
  coreset=(--set eval.num_eval=1 --set eval.epochs=0)
  num_experts=1 mtt=(--set method.num_experts=1)
  paper=(--budget smoke --set method.iterations=2 --set eval.num_eval=2 --set eval.epochs=1
         --set eval.num_exp=2 --set eval.networks_per_batch=2 --parallel-sets 2)
else
  bench=(--repeats 3)
  small=() coreset=() num_experts=2 mtt=()
  paper=(--budget paper --set eval.networks_per_batch=20 --set eval.compile_test=true
         --parallel-sets 5)
fi
echo "device check on $device, output in $out ($(date -Is))"
step paper-gm-mnist-ipc1 "$py" -m bench reproduce gm-mnist-ipc1 "${paper[@]}" "${common[@]}"
step speed-gm "$py" -m bench speed gm --device "$device" --data-root "$data_root" \
  --out "$out/bench" "${bench[@]}"
step smoke-gm "$py" -m bench reproduce gm-mnist-ipc1 --budget smoke "${common[@]}" "${small[@]}"
step smoke-random "$py" -m bench reproduce random-mnist-ipc1 --budget smoke "${common[@]}" "${coreset[@]}"
step smoke-herding "$py" -m bench reproduce herding-mnist-ipc1 --budget smoke "${common[@]}" "${coreset[@]}"
step smoke-whole "$py" -m bench reproduce whole-mnist --budget smoke "${common[@]}" "${coreset[@]}"
step smoke-pc-gm "$py" -m bench reproduce pc-gm-mnist-pytorch-2layer --budget smoke "${common[@]}" "${small[@]}"
step smoke-gtn "$py" -m bench reproduce gtn-gm-mnist --budget smoke "${common[@]}" "${small[@]}"
if [ -d "$data_root/CIFAR-10-images" ] || [ -d "$data_root/cifar-10-batches-py" ]; then
  cifar=cifar10; [ -d "$data_root/cifar-10-batches-py" ] || cifar=cifar10-jpeg
  # the smoke budget's experts (3 epochs on 100 images/class), made here: the machine starts bare
  step experts-mtt "$py" -m bench experts --dataset "$cifar" --preprocessing zca \
    --num-experts "$num_experts" --epochs 3 --images-per-class 100 \
    --experts-dir "$out/experts" "${common[@]}"
  step smoke-mtt "$py" -m bench reproduce mtt-cifar10-ipc1 --budget smoke --dataset "$cifar" \
    --set method.experts_dir="$out/experts" "${mtt[@]}" "${common[@]}" "${small[@]}"
else
  echo "skip   smoke-mtt: no CIFAR-10 under $data_root"
fi
echo "done: $failed failed step(s); store $MLFLOW_TRACKING_URI"
[ ! -f "$archive" ] || echo "archive: $archive ($(du -h "$archive" | cut -f1))"
exit "$failed"
