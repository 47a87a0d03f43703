#!/usr/bin/env bash
# Multi-task BUSI model with uncertainty weighting (Kendall et al. 2018) instead of fixed 1:1
# weights; same epochs and splits as busi_compare.sh.  Usage: bash benchmarks/busi_uncertainty.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/busi-uncertainty}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
for split in 1 2 3; do
  "$medmtl" train busi-cls-seg --out "$out/split$split" --no-report data.fold=$split \
    loss.balancer=uncertainty trainer.max_epochs=25 trainer.progress_bar=false
done
