#!/usr/bin/env bash
# Speed of the reference CNN: ferrite vs Keras (TensorFlow) vs PyTorch, side by side in one run,
# same machine, same thread count. Builds the release binary, sets up bench/.venv from PyPI,
# prints a table with ratios and a per-function profile of ferrite's training step (perf).
#
# Usage: bench/run.sh [STEPS]   (env BENCH_THREADS, default 2)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-30}"
export BENCH_THREADS="${BENCH_THREADS:-2}"
export RAYON_NUM_THREADS="$BENCH_THREADS"
cd "$root"
cargo build --release --quiet
"$root/bench/setup_venv.sh"
py="$root/bench/.venv/bin/python"
out="$(mktemp -d)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | threads $BENCH_THREADS | $(date -u +%F)"
"$root/target/release/ferrite" --threads "$BENCH_THREADS" bench --arch reference --steps "$steps" --json > "$out/ferrite.json"
"$py" "$root/bench/keras_ref.py" "$steps" 2>/dev/null | tail -n 1 > "$out/keras.json"
"$py" "$root/bench/torch_ref.py" "$steps" 2>/dev/null | tail -n 1 > "$out/torch.json"
"$py" - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
rows = {k: json.load(open(os.path.join(d, f"{k}.json"))) for k in ("ferrite", "keras", "torch")}
print(f"| framework | train img/s | infer img/s (b64) | infer ms (b1) | train vs Keras | infer vs Keras | train vs PyTorch | infer vs PyTorch |")
print("|---|---|---|---|---|---|---|---|")
for k, r in rows.items():
    print(f"| {r['framework']} | {r['train_img_s']:.1f} | {r['infer64_img_s']:.1f} | {r['infer1_ms']:.2f} | "
          f"{r['train_img_s'] / rows['keras']['train_img_s']:.2f}x | "
          f"{r['infer64_img_s'] / rows['keras']['infer64_img_s']:.2f}x | "
          f"{r['train_img_s'] / rows['torch']['train_img_s']:.2f}x | {r['infer64_img_s'] / rows['torch']['infer64_img_s']:.2f}x |")
PY
echo
echo "ferrite training step by stage (ferrite bench --profile, batch 64, mean of 10 steps):"
"$root/target/release/ferrite" --threads "$BENCH_THREADS" bench --arch reference --profile --steps 10
if command -v perf >/dev/null && perf stat -e instructions true >/dev/null 2>&1; then
  echo
  echo "ferrite training step, share of CPU time by function (perf, top 15):"
  perf record -q -F 499 -g -o "$out/perf.data" "$root/target/release/ferrite" --threads "$BENCH_THREADS" bench --steps 10 >/dev/null 2>&1
  perf report -i "$out/perf.data" --no-children --sort symbol 2>/dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//' | head -15
fi
rm -rf "$out"
