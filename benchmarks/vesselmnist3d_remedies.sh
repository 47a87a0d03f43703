#!/usr/bin/env bash
# Issue 16 on VesselMNIST3D (28³, the archive's own splits; 1335 train / 191 val / 382 test): the plain run
# (selected by validation AUC), its last epoch, EMA of the weights, SWA, test-time flips, and a 5-fold
# cross-validation ensemble, all evaluated on the same 382 test volumes.
# Usage: MEDMTL_DATA=../shared/data bash benchmarks/vesselmnist3d_remedies.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/vessel}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
config=benchmarks/configs/vesselmnist3d.yaml
common=(trainer.num_threads=1)   # one core per run: two runs side by side on a 2-core machine

"$medmtl" train "$config" --out "$out/plain" "${common[@]}"                              # select: best (val AUC)
"$medmtl" train "$config" --out "$out/ema" "${common[@]}" trainer.ema_decay=0.99 trainer.select=ema \
  trainer.ema_batchnorm=average  # as measured 2026-12-02 (benchmarks/README.md); "recompute" is the default now
"$medmtl" train "$config" --out "$out/swa" "${common[@]}" trainer.swa_start=0.75 trainer.select=last
"$medmtl" cv "$config" --folds 5 --out "$out/cv5" "${common[@]}"

for run in plain ema swa; do
  "$medmtl" evaluate "$out/$run" --split test --out "$out/$run/test_selected.json"
  "$medmtl" evaluate "$out/$run" --split test --tta flip --out "$out/$run/test_selected_tta.json"
done
"$medmtl" evaluate "$out/plain" --split test --checkpoint last --out "$out/plain/test_last.json"
"$medmtl" evaluate "$out/cv5" --tta flip --out "$out/cv5/test_tta.json"   # the ensemble: test split by default
