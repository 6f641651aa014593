#!/usr/bin/env bash
# Copy a finished reference run's small artefacts here and evaluate its model on val/
# (checkpoints and weights stay out of git). Usage: collect.sh RUN_DIR [DATA_ROOT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
run="${1:?usage: collect.sh RUN_DIR [DATA_ROOT]}"
data="${2:-${FERRITE_DATA:-$root/../shared/data/fer2013}}"
bin="$root/target/release/ferrite"
cp "$run/config.json" "$run/metrics.csv" "$run/curves.png" "$here/"
"$bin" evaluate --model "$run" --data "$data/val" --out "$here" | tee "$here/evaluate.txt"
tmp="$(mktemp -d)"
"$bin" evaluate --model "$run" --data "$data/val" --tta flip --out "$tmp" | tee "$here/evaluate-tta-flip.txt"
cp "$tmp/evaluate.json" "$here/evaluate-tta-flip.json"
rm -rf "$tmp"
