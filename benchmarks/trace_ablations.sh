#!/usr/bin/env bash
# Ablations of the trace pre-training recipe (BENCHMARKS.md, "trace: ablations"): each row trains a
# backbone for $STEPS steps (default 500) into runs/abl/NAME, then measures zero-shot linkage
# (imagen-dev and the zoo) and the frozen linear probe / leave-one-generator-out open set on
# imagen-dev. A finished run is not trained again. Run from the repository root:
#   bash benchmarks/trace_ablations.sh            # every row, about 45 minutes on 2 cores
#   bash benchmarks/trace_ablations.sh pk16 ce64  # some rows
set -euo pipefail
STEPS=${STEPS:-500}
declare -A ROWS=(
  [pk64]="--architectures 64 --per-architecture 4"
  [uni64]="--architectures 64"
  [pk16]="--architectures 16 --per-architecture 4"
  [pk256]="--architectures 256 --per-architecture 4"
  [ce64]="--architectures 64 --per-architecture 4 --loss ce"
  [arc64]="--architectures 64 --per-architecture 4 --loss arcface"
  [pk64nopp]="--architectures 64 --per-architecture 4 --no-postprocess"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(pk64 uni64 pk16 pk256 ce64 arc64 pk64nopp)
mkdir -p runs/abl
for name in "${names[@]}"; do
  out=runs/abl/$name
  if ! grep -qs '"done": true' "$out/progress.json"; then
    # shellcheck disable=SC2086
    python -m provenance.detectors.image.trace_training --out "$out" --steps "$STEPS" --batch 64 --threads 2 \
      --seed 0 -q --resume ${ROWS[$name]}
  fi
  opts="{\"weights\": \"$out/model\"}"
  python -m benchmarks.trace_linkage --options "$opts" | tee "runs/abl/$name.linkage.log"
  python -m benchmarks.imagen_frozen_features --extractor trace --options "$opts" --C 1 | tee "runs/abl/$name.frozen.log"
done
