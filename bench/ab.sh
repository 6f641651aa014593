#!/usr/bin/env bash
# Two ferrite binaries side by side on the embedded model's architecture (compact w28, crop 40,
# one stem convolution, batch 64, two threads): `ferrite bench` alternated ROUNDS times in one
# run (this machine's speed drifts by +-20% between minutes, so compare medians of one run only).
# Build the baseline from an older commit first, e.g.
#   git worktree add /tmp/base REV && (cd /tmp/base && cargo build --release)
# Usage: [AB_MATMUL=f32|bf16] bench/ab.sh BASE_BIN NEW_BIN [ROUNDS] [STEPS]
set -euo pipefail
base="${1:?usage: bench/ab.sh BASE_BIN NEW_BIN [ROUNDS] [STEPS]}"
new="${2:?usage: bench/ab.sh BASE_BIN NEW_BIN [ROUNDS] [STEPS]}"
rounds="${3:-5}"
steps="${4:-20}"
# bf16 matrix products where the CPU has them (what `train` picks); AB_MATMUL=f32 forces f32.
matmul=f32
grep -q avx512_bf16 /proc/cpuinfo && matmul=bf16
matmul="${AB_MATMUL:-$matmul}"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | matmul $matmul | $(date -u +%F)"
out="$(mktemp)"
for _ in $(seq "$rounds"); do
  for which in base new; do
    bin="$base"; [ "$which" = new ] && bin="$new"
    "$bin" --matmul "$matmul" bench --arch compact --width 28 --stem-convs 1 --crop 40 --steps "$steps" --json 2>/dev/null |
      python3 -c 'import json,sys; j=json.load(sys.stdin); print(sys.argv[1], j["train_img_s"], j["infer64_img_s"])' "$which" >> "$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics
runs = {}
for line in open(sys.argv[1]):
    w, t, i = line.split()
    runs.setdefault(w, []).append((float(t), float(i)))
med = {w: (statistics.median(v[0] for v in r), statistics.median(v[1] for v in r)) for w, r in runs.items()}
print("| binary | train img/s (median) | all runs | infer b64 img/s (median) | all runs |")
print("|---|---|---|---|---|")
for w in ("base", "new"):
    r = runs[w]
    print("| %s | %.1f | %s | %.0f | %s |" % (w, med[w][0], " ".join("%.0f" % v[0] for v in r), med[w][1], " ".join("%.0f" % v[1] for v in r)))
print("new vs base: train %.2fx, inference %.2fx" % (med["new"][0] / med["base"][0], med["new"][1] / med["base"][1]))
PY
rm -f "$out"
