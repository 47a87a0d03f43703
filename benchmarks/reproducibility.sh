#!/usr/bin/env bash
# Is a seeded run the same run everywhere? Trains busi-cls-seg for a tenth of an epoch four times
# (one thread each): twice with different PYTHONHASHSEED, once with oneDNN limited to AVX2
# instructions (ONEDNN_MAX_CPU_ISA=AVX2, as on a CPU without AVX-512), once with torch's own
# vector kernels limited to AVX2 (ATEN_CPU_CAPABILITY=avx2); then counts the weight tensors of
# each last.ckpt that differ from the first run's. Needs MEDMTL_DATA (BUSI).
# Usage: bash benchmarks/reproducibility.sh [OUT]
set -euo pipefail
out=${1:-runs/reproducibility}
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
python=${PYTHON_BIN:-.venv/bin/python}
args=(busi-cls-seg --no-report trainer.max_epochs=1 trainer.limit_train_batches=0.1
      trainer.limit_val_batches=0.2 trainer.num_threads=1 trainer.progress_bar=false)
train() {  # NAME ENV...: one run into OUT/NAME
  local name=$1; shift
  rm -rf "${out:?}/$name"
  env "$@" "$medmtl" --quiet train "${args[@]}" --out "$out/$name" > "$out/$name.log" 2>&1
}
mkdir -p "$out"
train hashseed1 PYTHONHASHSEED=1 & train hashseed2 PYTHONHASHSEED=2 & wait
train onednn-avx2 ONEDNN_MAX_CPU_ISA=AVX2 & train aten-avx2 ATEN_CPU_CAPABILITY=avx2 & wait
"$python" - "$out" <<'EOF'
import sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
def weights(name):
    return torch.load(out / name / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
reference = weights("hashseed1")
for name in ("hashseed2", "onednn-avx2", "aten-avx2"):
    other = weights(name)
    differ = [k for k in reference if not torch.equal(reference[k], other[k])]
    largest = max(float((reference[k].double() - other[k].double()).abs().max()) for k in reference)
    print(f"{name}: {len(differ)} of {len(reference)} tensors differ from hashseed1, largest |Δ| {largest:.2g}")
EOF
