#!/usr/bin/env bash
# Single-task vs multi-task on BUSI (benign vs malignant, the three published splits), CPU.
# Usage: bash benchmarks/busi_compare.sh [OUT_DIR]   (needs $MEDMTL_DATA or ../shared/data)
set -euo pipefail
out=${1:-runs/busi-compare}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
"$medmtl" compare busi-cls-seg --out "$out" --splits 1,2,3 trainer.max_epochs=25 trainer.progress_bar=false
