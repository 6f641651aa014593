#!/usr/bin/env bash
# Copy a finished run's small artefacts into docs/runs/NAME and evaluate its model on val/
# without and with test-time augmentation (checkpoints and weights stay out of git).
# Usage: docs/runs/collect.sh RUN_DIR NAME [DATA_ROOT]
set -euo pipefail
runs="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$runs/../.." && pwd)"
run="${1:?usage: collect.sh RUN_DIR NAME [DATA_ROOT]}"
here="$runs/${2:?usage: collect.sh RUN_DIR NAME [DATA_ROOT]}"
data="${3:-${FERRITE_DATA:-$root/../shared/data/fer2013}}"
bin="$root/target/release/ferrite"
mkdir -p "$here"
cp "$run/config.json" "$run/metrics.csv" "$run/curves.png" "$here/"
"$bin" evaluate --model "$run" --data "$data/val" --out "$here" | tee "$here/evaluate.txt"
for tta in flip ten thirty; do
  tmp="$(mktemp -d)"
  "$bin" evaluate --model "$run" --data "$data/val" --tta "$tta" --out "$tmp" | tee "$here/evaluate-tta-$tta.txt"
  cp "$tmp/evaluate.json" "$here/evaluate-tta-$tta.json"
  rm -rf "$tmp"
done
