#!/usr/bin/env bash
# Inference speed of the embedded default model next to the reference CNN, in one run:
# single preprocessed 48x48 face to probabilities (median) and 64-face throughput, one thread
# and all threads, through burn flex (batch 64 / batch 1) and through the tract-compiled copy
# (`onnx::FastModel`, one run per face: what predict/detect/video/serve use).
# Usage: bench/model.sh [STEPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-40}"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/ferrite"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
echo "| model | threads | flex batch-1 ms | compiled batch-1 ms | flex batch-64 img/s | compiled 64 faces img/s |"
echo "|---|---|---|---|---|---|"
for threads in 1 "$(nproc)"; do
  for which in embedded reference; do
    if [ "$which" = embedded ]; then
      json="$(RAYON_NUM_THREADS=$threads "$bin" --threads "$threads" bench --embedded --steps "$steps" --json)"
    else
      json="$(RAYON_NUM_THREADS=$threads "$bin" --threads "$threads" bench --arch reference --inference-only --steps "$steps" --json)"
    fi
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("| %s (%s) | %s | %.2f | %.2f | %.1f | %.1f |" % (sys.argv[2], r["arch"], sys.argv[3], r["infer1_ms"], r["fast1_ms"], r["infer64_img_s"], r["fast64_img_s"]))' "$json" "$which" "$threads"
  done
done
