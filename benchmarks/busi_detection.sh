#!/usr/bin/env bash
# Detection, the four-task model and FT-MTL-Net on BUSI (the three published splits), CPU.
# Every row: small_cnn encoder (width 16, 5 scales), 128×128, the same epochs, batch 16.
# Usage: bash benchmarks/busi_detection.sh [OUT_DIR] [EPOCHS]   (needs $MEDMTL_DATA or ../shared/data)
# Finished runs are skipped, so the script can be re-run after an interruption.
set -euo pipefail
out=${1:-runs/busi-detection}
epochs=${2:-25}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
common=("model.encoder={name: small_cnn, options: {width: 16, depth: 5}}" "trainer.max_epochs=$epochs"
        trainer.progress_bar=false trainer.num_threads=2)

# single-task classification / segmentation / detection and the four-task model (all weights 1)
"$medmtl" compare four-task --out "$out/four-task" --splits 1,2,3 "${common[@]}"

for split in 1 2 3; do
  # informative subsets by 0/1 weights (switched-off heads are still evaluated, untrained)
  "$medmtl" train four-task --out "$out/cls-seg-det/split$split" "data.split=$split" "${common[@]}" \
    loss.weights.reconstruction=0
  "$medmtl" train four-task --out "$out/cls-det/split$split" "data.split=$split" "${common[@]}" \
    loss.weights.reconstruction=0 loss.weights.segmentation=0
  # FT-MTL-Net with and without the segmentation-to-classification feature transfer
  "$medmtl" train ft-mtl-net --out "$out/ft-mtl-net/split$split" "data.split=$split" "${common[@]}"
  "$medmtl" train ft-mtl-net --out "$out/ft-mtl-net-no-transfer/split$split" "data.split=$split" "${common[@]}" \
    model.tasks.0.feature_transfer=false
done
.venv/bin/python benchmarks/summarize_runs.py "$out" > "$out/summary.md"
cat "$out/summary.md"
