#!/usr/bin/env bash
# LIDC-IDRI nodules (issue 11): medmtl's rows on 1 mm isotropic 32³ CT crops centred on the nodule.
# Folds 0-3 train (validation: k-fold fold 1 of 5 inside them, grouped by patient), fold 4 is the
# test split, evaluated once at the end of each run (best validation checkpoint).
# Usage: bash benchmarks/lidc.sh [OUT_DIR] [EPOCHS] [SEED]   (needs $MEDMTL_DATA or ../shared/data)
# Rows: single-task malignancy, single-task segmentation, multi-task (malignancy + segmentation +
# reconstruction) via `medmtl compare` (paired on the test nodules), then the MTMS model and
# the model with the 1-5 rating as an extra regression task; the plain MONAI baselines (3D U-Net,
# 3D ResNet-18) on the same crops and budget (benchmarks/lidc_baselines.py), paired with medmtl's
# single-task models on the test nodules (paired_resnet18.md, paired_unet.md).
# Finished runs are skipped on a re-run. JOBS=2 trains two runs at a time, one CPU thread each
# (`medmtl compare --only` for the comparison's variants), then compares the finished runs.
set -euo pipefail
out=${1:-runs/lidc}
epochs=${2:-20}
seed=${3:-0}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
python=${PYTHON_BIN:-.venv/bin/python}
mkdir -p "$out"
data=$("$python" -c "from medmtl.paths import resolve_data_path; print(resolve_data_path('\${MEDMTL_DATA}'))")
csv="$data/volumes/lidc-nodules/nodules.csv"
"$python" - "$csv" "$out/test_fold4.txt" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
open(sys.argv[2], "w").write("".join(r["name"] + "\n" for r in rows if r["fold"] == "4"))
PY
common=("data.split_test=$(realpath "$out/test_fold4.txt")" data.fold=1 "trainer.max_epochs=$epochs" "seed=$seed")
jobs=${JOBS:-1}
threads=(); [ "$jobs" -gt 1 ] && threads=(trainer.num_threads=1)
variant() {  # one variant of the comparison
  "$medmtl" compare benchmarks/configs/lidc-mtl.yaml --out "$out/compare" --splits 1 --single malignancy,segmentation \
    --no-report --only "$1" "${common[@]}" "${threads[@]}"
}
baseline() {  # one plain MONAI baseline
  "$python" benchmarks/lidc_baselines.py --out "$out/baselines" --epochs "$epochs" --seed "$seed" \
    --split-test "$out/test_fold4.txt" --models "$1" --threads "$([ "$jobs" -gt 1 ] && echo 1 || echo 2)"
}
model() {  # the MTMS model or the model with the rating
  [ -f "$out/$1/metrics.json" ] || "$medmtl" train "benchmarks/configs/lidc-$1.yaml" --out "$out/$1" \
    "${common[@]}" "${threads[@]}"
}
# shellcheck source=benchmarks/lanes.sh
source "$(dirname "$0")/lanes.sh"
run_steps "$out" "variant single-malignancy" "variant single-segmentation" "variant multi-task" "baseline unet" \
  "baseline resnet18" "model mtms" "model rating"
for run in "$out"/compare/*/split1 "$out/mtms" "$out/rating"; do
  [ -f "$run/metrics_test.json" ] || "$medmtl" evaluate "$run" --split test
done
# the finished single- and multi-task models paired on the same test nodules
"$medmtl" compare benchmarks/configs/lidc-mtl.yaml --out "$out/compare" --splits 1 --single malignancy,segmentation \
  --no-report --pair-on test "${common[@]}"
# medmtl's single-task models and the plain MONAI baselines, paired on the same test nodules
"$python" benchmarks/remedies_paired.py "medmtl=$out/compare/single-malignancy/split1" \
  "monai-resnet18=$out/baselines/resnet18/predictions_test.npz" > "$out/paired_resnet18.md"
"$python" benchmarks/remedies_paired.py "medmtl=$out/compare/single-segmentation/split1" \
  "monai-unet=$out/baselines/unet/predictions_test.npz" > "$out/paired_unet.md"
"$python" benchmarks/lidc_summary.py "$out"
