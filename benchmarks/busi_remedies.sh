#!/usr/bin/env bash
# Issue 16 on BUSI classification + segmentation (busi-cls-seg), the three published splits with an
# honest selection protocol: validation = 15% of each published training list (benchmarks/
# busi_holdout_splits.py), test = the published validation list, which no selection sees.
# Variants: plain (best epoch by validation loss), ema (EMA of the weights, decay 0.99, select ema;
# BatchNorm statistics recomputed), ema_avg (the same with the statistics averaged like the weights),
# swa (SWA over the last 25% of the epochs, select last); each evaluated on test with and without
# horizontal-flip TTA; the plain run's last epoch too.
# Usage: MEDMTL_DATA=../shared/data bash benchmarks/busi_remedies.sh [OUT] [EPOCHS] [VARIANTS] [SPLITS]
#   e.g. two lanes side by side on 2 cores: ... runs/busi-rem 25 "plain swa" "1 2 3" & ... "ema" "1 2 3"
# Finished runs (metrics.json present) are skipped, so the script can be re-run.
set -euo pipefail
out=${1:-runs/busi-remedies}
epochs=${2:-25}
variants=${3:-plain ema swa}
splits=${4:-1 2 3}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
python=${PYTHON:-.venv/bin/python}
lists=$out/splits
[ -f "$lists/test3.txt" ] || "$python" benchmarks/busi_holdout_splits.py --out "$lists"
common=(trainer.max_epochs="$epochs" trainer.num_threads=1 trainer.progress_bar=false
        "data.split_train=$(realpath "$lists")/train{fold}.txt" "data.split_val=$(realpath "$lists")/val{fold}.txt"
        "data.split_test=$(realpath "$lists")/test{fold}.txt")
declare -A extra=([plain]="" [ema]="trainer.ema_decay=0.99 trainer.select=ema"
                  [ema_avg]="trainer.ema_decay=0.99 trainer.select=ema trainer.ema_batchnorm=average"
                  [swa]="trainer.swa_start=0.75 trainer.select=last")
for variant in $variants; do
  for split in $splits; do
    run=$out/$variant/split$split
    mkdir -p "$out/$variant"
    if [ ! -f "$run/metrics.json" ]; then
      # shellcheck disable=SC2086
      /usr/bin/time -f "%e s wall" -o "$run.time" "$medmtl" train busi-cls-seg --out "$run" data.fold="$split" \
        "${common[@]}" ${extra[$variant]}
    fi
    [ -f "$run/test_selected.json" ] || "$medmtl" evaluate "$run" --split test --out "$run/test_selected.json"
    [ -f "$run/test_selected_tta.json" ] || "$medmtl" evaluate "$run" --split test --tta hflip \
      --out "$run/test_selected_tta.json"
    if [ "$variant" = plain ] && [ ! -f "$run/test_last.json" ]; then
      "$medmtl" evaluate "$run" --split test --checkpoint last --out "$run/test_last.json"
    fi
  done
done
