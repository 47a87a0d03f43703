#!/usr/bin/env bash
# Issue 12 on BUSI classification + segmentation (busi-cls-seg, the three published splits): the two
# single-task models and one multi-task model per loss balancer, every (variant, split) its own run
# (`medmtl compare --only`), JOBS at a time with one CPU thread each, then one `medmtl compare` that
# pairs the finished runs on the same validation images (comparison.md: paired 95% intervals, Δm%,
# a verdict per task, the figure of per-task differences).
# Usage: JOBS=2 bash benchmarks/busi_balancers.sh [OUT] [EPOCHS] [BALANCERS] [SPLITS] [OVERRIDE...]
#   e.g. JOBS=2 bash benchmarks/busi_balancers.sh runs/busi-bal25 25 pcgrad,mgda "1 2 3"
#   overrides go to every run: ... runs/busi-w25 25 fixed "1 2 3" loss.weights.classification=0.25
# Finished runs (DIR/<variant>/split<k>/metrics.json) are skipped, so the script can be re-run.
set -euo pipefail
out=${1:-runs/busi-balancers}
epochs=${2:-25}
balancers=${3:-fixed,pcgrad}
splits=${4:-1 2 3}
shift $(($# < 4 ? $# : 4))
medmtl=${MEDMTL_BIN:-.venv/bin/medmtl}
mkdir -p "$out"
common=(busi-cls-seg --out "$out" --balancers "$balancers" --no-report "trainer.max_epochs=$epochs"
        trainer.progress_bar=false "$@")
[ "${JOBS:-1}" -gt 1 ] && common+=(trainer.num_threads=1)
variant() {  # VARIANT SPLIT: one run
  "$medmtl" compare "${common[@]}" --splits "$2" --only "$1"
}
steps=()
for split in $splits; do
  for name in single-classification single-segmentation ${balancers//,/ }; do
    case $name in single-*) steps+=("variant $name $split") ;; *) steps+=("variant multi-task-$name $split") ;; esac
  done
done
# shellcheck source=benchmarks/lanes.sh
source "$(dirname "$0")/lanes.sh"
run_steps "$out" "${steps[@]}"
"$medmtl" compare "${common[@]}" --splits "$(echo $splits | tr ' ' ,)"
