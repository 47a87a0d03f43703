#!/usr/bin/env bash
# Neural Image Compression end to end on synthetic slides: patch encoders trained three ways
# (supervised multi-task, single-task, unsupervised reconstruction), slides compressed with each,
# and the same slide-level model (nic-slide preset) trained on each set of grids.
# Usage: bash benchmarks/nic_pipeline.sh [OUT_DIR]
# Sizes by environment: N_ENCODER_SLIDES (12), N_SLIDES (48), ENCODER_EPOCHS (10), SLIDE_EPOCHS (20).
set -euo pipefail
out=${1:-runs/nic-pipeline}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
python=${PYTHON_BIN:-.venv/bin/python}
n_enc=${N_ENCODER_SLIDES:-12}; n_slides=${N_SLIDES:-48}
enc_epochs=${ENCODER_EPOCHS:-10}; slide_epochs=${SLIDE_EPOCHS:-20}
mkdir -p "$out"

# 1. slides: one set to train the patch encoders, another for the slide-level task (with a
#    synthetic survival time that shortens with the tumour density)
"$python" benchmarks/nic_make_slides.py "$out" "$n_enc" "$n_slides"

# 2. patches with weak (slide-level) labels, 64 px at 1 µm/px (the field of view of 128 px at 0.5)
"$medmtl" extract-patches "$out/encoder-slides/labels.csv" --out "$out/patches" --per-slide 48 \
  --patch-size 64 --mpp 1.0

common=("data.manifest=$out/patches/patches.csv" "trainer.max_epochs=$enc_epochs" trainer.progress_bar=false)
declare -A tasks=(
  [multi-task]="[{kind: classification, num_classes: 2}, {kind: regression}]"
  [single-task]="[{kind: classification, num_classes: 2}]"
  [unsupervised]="[{kind: reconstruction, use_skips: false}]"
)
for variant in multi-task single-task unsupervised; do
  # 3. the patch encoder
  "$medmtl" train benchmarks/configs/nic-encoder.yaml --out "$out/encoder-$variant" \
    "model.tasks=${tasks[$variant]}" "${common[@]}" --no-report
  # 4. compression of the slide-level set
  "$medmtl" compress "$out"/slides/*.tif --encoder "$out/encoder-$variant" --out "$out/grids-$variant" \
    --mpp 1.0 --patch-size 64
  "$python" benchmarks/nic_make_slides.py --grid-manifest "$out" "$variant"
  # 5. the slide-level model on the grids (128 channels = small_cnn width 16, 4 stages)
  "$medmtl" train nic-slide --out "$out/slide-$variant" "data.manifest=$out/grids-$variant/grids.csv" \
    data.channels=128 data.grid_size=32 "trainer.max_epochs=$slide_epochs" trainer.progress_bar=false --no-report
done
"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| encoder | slide AUC [95% CI] | Spearman (density) [95% CI] | C-index [95% CI] |\n|---|---|---|---|")
for variant in ("multi-task", "single-task", "unsupervised"):
    m = json.loads((out / f"slide-{variant}" / "metrics.json").read_text())
    def cell(task, key):
        value, (lo, hi) = m[task].get(key), m[task].get(key + "_ci95", [None, None])
        number = lambda v: "–" if v is None else f"{v:.3f}"
        return f"{number(value)} [{number(lo)}, {number(hi)}]"
    print(f"| {variant} | {cell('classification', 'auc')} | {cell('regression', 'spearman')} | "
          f"{cell('survival', 'c_index')} |")
PY
