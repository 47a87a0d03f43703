#!/usr/bin/env bash
# The real TCGA slide through the NIC pipeline: compress with the multi-task patch encoder of
# benchmarks/nic_pipeline.sh, then the slide-level model's risk score for it.
# Usage: bash benchmarks/nic_tcga.sh [PIPELINE_DIR]   (run nic_pipeline.sh first)
# The slide (a reduced copy) carries no µm/px metadata, so its level 1 is read directly: this
# checks that a real slide goes through every step; the score is not a validated prediction
# (the models were trained on synthetic slides).
set -euo pipefail
out=${1:-runs/nic-pipeline}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
data=${MEDMTL_DATA:-../shared/data}
slide="$data/wsi/tcga-cr-7395-01a-01-ts1.svs"
"$medmtl" compress "$slide" --encoder "$out/encoder-multi-task" --out "$out/tcga" --level 1 --patch-size 64
"$medmtl" show-grid "$out/tcga/tcga-cr-7395-01a-01-ts1.zarr" --out "$out/tcga/tcga-grid.png"
"$medmtl" predict "$out/slide-multi-task" "$out/tcga/tcga-cr-7395-01a-01-ts1.zarr" --out "$out/tcga/prediction"
cat "$out/tcga/prediction/predictions.json"
grep -i "TCGA-CR-7395" "$data/survival/tcga_cdr_survival.csv" | cut -d, -f1,2,7,8   # patient, type, OS event, OS days
