#!/usr/bin/env bash
# Issue 16 on VesselMNIST3D (28³, the archive's own splits; 1335 train / 191 val / 382 test): the plain run
# (selected by validation AUC), its last epoch, EMA of the weights (BatchNorm statistics recomputed, the
# default, or averaged like the weights), SWA, test-time flips, and a 5-fold cross-validation ensemble,
# all evaluated on the same 382 test volumes.
# Usage: MEDMTL_DATA=../shared/data [JOBS=2] bash benchmarks/vesselmnist3d_remedies.sh [OUT_DIR] [VARIANTS]
#   VARIANTS: any of "plain ema ema_avg swa cv5" (the default: all); JOBS of them side by side.
# Finished runs (metrics.json, cv.json) and evaluations are skipped, so the script can be re-run.
set -euo pipefail
out=${1:-runs/vessel}
variants=${2:-plain ema ema_avg swa cv5}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
config=benchmarks/configs/vesselmnist3d.yaml
common=(trainer.num_threads=1)   # one core per run: two runs side by side on a 2-core machine
declare -A extra=([plain]=""     # select: best (validation AUC)
                  [ema]="trainer.ema_decay=0.99 trainer.select=ema"
                  [ema_avg]="trainer.ema_decay=0.99 trainer.select=ema trainer.ema_batchnorm=average"
                  [swa]="trainer.swa_start=0.75 trainer.select=last")
mkdir -p "$out"

evaluate() {  # RUN OUT_FILE [OPTION...]: evaluate on the test split unless OUT_FILE exists
  local run=$1 file=$2
  shift 2
  [ -f "$file" ] || "$medmtl" evaluate "$run" --split test --out "$file" "$@"
}

variant() {  # NAME: train (unless finished), then evaluate on test with and without flips
  local run=$out/$1
  if [ "$1" = cv5 ]; then
    [ -f "$run/cv.json" ] || "$medmtl" cv "$config" --folds 5 --out "$run" "${common[@]}"
    [ -f "$run/test_tta.json" ] || "$medmtl" evaluate "$run" --tta flip --out "$run/test_tta.json"
    return
  fi
  if [ ! -f "$run/metrics.json" ]; then
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e s wall" -o "$run.time" "$medmtl" train "$config" --out "$run" "${common[@]}" ${extra[$1]}
  fi
  evaluate "$run" "$run/test_selected.json"
  evaluate "$run" "$run/test_selected_tta.json" --tta flip
  [ "$1" != plain ] || evaluate "$run" "$run/test_last.json" --checkpoint last
}

steps=()
for name in $variants; do
  [ "$name" = cv5 ] || [ -n "${extra[$name]+set}" ] || { echo "${0##*/}: unknown variant '$name'" >&2; exit 2; }
  steps+=("variant $name")
done
# shellcheck source=benchmarks/lanes.sh
source "$(dirname "$0")/lanes.sh"
run_steps "$out" "${steps[@]}"
