#!/usr/bin/env bash
# LIDC-IDRI nodules (issue 11): medmtl's rows on 1 mm isotropic 32³ CT crops centred on the nodule.
# Folds 0-3 train (validation: k-fold fold 1 of 5 inside them, grouped by patient), fold 4 is the
# test split, evaluated once at the end of each run (best validation checkpoint).
# Usage: bash benchmarks/lidc.sh [OUT_DIR] [EPOCHS] [SEED]   (needs $MEDMTL_DATA or ../shared/data)
# Rows: single-task malignancy, single-task segmentation, multi-task (malignancy + segmentation +
# reconstruction) via `medmtl compare` (paired on the validation nodules), then the MTMS model and
# the model with the 1-5 rating as an extra regression task; the plain MONAI baselines (3D U-Net,
# 3D ResNet-18) on the same crops and budget run after the comparison (benchmarks/lidc_baselines.py).
# Finished runs are skipped on a re-run.
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
"$medmtl" compare benchmarks/configs/lidc-mtl.yaml --out "$out/compare" --splits 1 --single malignancy,segmentation \
  --no-report "${common[@]}"
"$python" benchmarks/lidc_baselines.py --out "$out/baselines" --epochs "$epochs" --seed "$seed" \
  --split-test "$out/test_fold4.txt"
for name in mtms rating; do
  if [ ! -f "$out/$name/metrics.json" ]; then
    "$medmtl" train "benchmarks/configs/lidc-$name.yaml" --out "$out/$name" "${common[@]}"
  fi
done
for run in "$out"/compare/*/split1 "$out/mtms" "$out/rating"; do
  [ -f "$run/metrics_test.json" ] || "$medmtl" evaluate "$run" --split test
done
# the finished single- and multi-task models paired on the same test nodules
"$medmtl" compare benchmarks/configs/lidc-mtl.yaml --out "$out/compare" --splits 1 --single malignancy,segmentation \
  --no-report --pair-on test "${common[@]}"
"$python" benchmarks/lidc_summary.py "$out"
