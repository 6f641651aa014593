#!/usr/bin/env bash
# Training speed of the embedded model's architecture with the batch split over data-parallel
# replicas (`--replicas`), the settings alternated ROUNDS times in one run (this machine's speed
# drifts by +-20% between minutes, so compare medians of the same run only).
# Usage: bench/replicas.sh [ROUNDS] [STEPS]   (extra settings: env REPLICAS, default "1 2 4")
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-5}"
steps="${2:-30}"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/ferrite"
matmul=f32
grep -q avx512_bf16 /proc/cpuinfo && matmul=bf16
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | matmul $matmul | $(date -u +%F)"
out="$(mktemp)"
for _ in $(seq "$rounds"); do
  for r in ${REPLICAS:-1 2 4}; do
    "$bin" --matmul "$matmul" bench --arch compact --width 28 --stem-convs 1 --crop 40 --steps "$steps" \
      --replicas "$r" --json 2>/dev/null | python3 -c 'import json,sys; print(sys.argv[1], json.load(sys.stdin)["train_img_s"])' "$r" >> "$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics
runs = {}
for line in open(sys.argv[1]):
    r, v = line.split()
    runs.setdefault(int(r), []).append(float(v))
base = statistics.median(runs[min(runs)])
print("| replicas | train img/s (median) | all runs | vs %d |" % min(runs))
print("|---|---|---|---|")
for r, v in sorted(runs.items()):
    m = statistics.median(v)
    print(f"| {r} | {m:.1f} | {' '.join(f'{x:.0f}' for x in sorted(v))} | {m / base:.2f}x |")
PY
rm -f "$out"
