#!/usr/bin/env bash
# Detection, the four-task model and FT-MTL-Net on BUSI (the three published splits), CPU.
# Every row: small_cnn encoder (width 16, 5 scales), 128×128, the same epochs, batch 16.
# Usage: bash benchmarks/busi_detection.sh [OUT_DIR] [EPOCHS] [LANES]   (needs $MEDMTL_DATA or ../shared/data)
# Jobs run in LANES parallel lanes (default 2) of one torch thread each, longest jobs first, each lane
# taking the next unclaimed job; finished runs (metrics.json present) are skipped and an interrupted
# run resumes from its last checkpoint, so the script can simply be started again.
set -euo pipefail
out=${1:-runs/busi-detection}
epochs=${2:-25}
lanes=${3:-2}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
common=("model.encoder={name: small_cnn, options: {width: 16, stages: 5}}" "trainer.max_epochs=$epochs"
        trainer.progress_bar=false trainer.num_threads=1)
mkdir -p "$out"
claims=$(mktemp -d)
trap 'rm -rf "$claims"' EXIT

train() {  # train PRESET RUN_DIR [overrides...], unless RUN_DIR already holds a finished run
  local preset=$1 dir=$2; shift 2
  [[ -f "$dir/metrics.json" ]] || "$medmtl" train "$preset" --out "$dir" "${common[@]}" "$@"
}

run_job() {
  local job=$1 split=${1##*-}
  case $job in
    # single-task classification / segmentation / detection and the four-task model (all weights 1)
    compare-*) "$medmtl" compare four-task --out "$out/four-task" --splits "$split" "${common[@]}" ;;
    # FT-MTL-Net with and without the segmentation-to-classification feature transfer
    ft-mtl-net-*) train ft-mtl-net "$out/ft-mtl-net/split$split" "data.fold=$split" ;;
    no-transfer-*) train ft-mtl-net "$out/ft-mtl-net-no-transfer/split$split" "data.fold=$split" \
                     model.tasks.0.feature_transfer=false ;;
    # informative subsets by 0/1 weights (switched-off heads are still evaluated, untrained)
    cls-seg-det-*) train four-task "$out/cls-seg-det/split$split" "data.fold=$split" loss.weights.reconstruction=0 ;;
    cls-det-*) train four-task "$out/cls-det/split$split" "data.fold=$split" \
                 loss.weights.reconstruction=0 loss.weights.segmentation=0 ;;
  esac
}

# longest first (measured at 12 epochs, two lanes: a compare split ≈ 33 min, FT-MTL-Net ≈ 28,
# a four-task subset 11–13, FT-MTL-Net without transfer ≈ 9)
jobs=(compare-1 compare-2 compare-3 ft-mtl-net-1 ft-mtl-net-2 ft-mtl-net-3 no-transfer-1 no-transfer-2
      no-transfer-3 cls-seg-det-1 cls-seg-det-2 cls-seg-det-3 cls-det-1 cls-det-2 cls-det-3)

finish_runs() {  # report and FROC-with-normals for every finished run that lacks them
  local run
  for run in "$out"/*/split* "$out"/four-task/*/split*; do
    [[ -f "$run/metrics.json" ]] || continue
    mkdir "$claims/finish-${run//\//_}" 2> /dev/null || continue
    # runs trained without a report (e.g. by an older medmtl) get one: the combined figures read its curves
    [[ -f "$run/report/report.md" ]] || "$medmtl" evaluate "$run" --report > /dev/null
    # FROC with negatives: the published splits list lesion images only, so every trained detection head
    # is evaluated again with the split's hold-out share of the normal images added to validation
    if grep -q "kind: detection" "$run/config.yaml" && [[ ! -f "$run/metrics_val_normals.json" ]]; then
      "$medmtl" evaluate "$run" --out "$run/metrics_val_normals.json" data.include_normal=true > /dev/null
    fi
  done
}

lane() {
  for job in "${jobs[@]}"; do
    mkdir "$claims/$job" 2> /dev/null || continue  # another lane has it
    echo "$(date +%T) start $job"
    run_job "$job"
    echo "$(date +%T) done $job"
    finish_runs
  done
}

pids=()
for i in $(seq "$lanes"); do
  lane > "$out/lane$i.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || echo "a lane stopped on an error: see $out/lane*.log"; done
finish_runs  # whatever finished last
# all runs are finished now: this only tabulates the comparison over the three splits
"$medmtl" compare four-task --out "$out/four-task" --splits 1,2,3 --no-report "${common[@]}" > /dev/null
.venv/bin/python benchmarks/summarize_runs.py "$out" > "$out/summary.md"
cat "$out/summary.md"
