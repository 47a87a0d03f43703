#!/usr/bin/env bash
# Single-task vs multi-task on BUSI (benign vs malignant, the three published splits), CPU.
# Usage: bash benchmarks/busi_compare.sh [OUT_DIR] [EPOCHS]   (needs $MEDMTL_DATA or ../shared/data)
# Finished runs (DIR/<variant>/split<k>/metrics.json) are skipped, so the script can be re-run.
set -euo pipefail
out=${1:-runs/busi-compare}
epochs=${2:-50}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
"$medmtl" compare busi-cls-seg --out "$out" --splits 1,2,3 "trainer.max_epochs=$epochs" trainer.progress_bar=false
