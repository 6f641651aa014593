#!/usr/bin/env bash
# Two ferrite binaries give the same outputs (a restructure's "behaviour unchanged"): layer
# tables and diagrams, the ONNX export, `detect` on the committed photos, `evaluate` on FER+ val
# (bf16 products where the CPU has them) and a brief seeded training run (dropout, two replicas).
# Build the baseline from an older commit first, e.g.
#   git worktree add /tmp/base REV && (cd /tmp/base && cargo build --release)
# Usage: bench/ab_outputs.sh BASE_BIN NEW_BIN   (FERRITE_DATA: FER2013 folder, default ../shared/data/fer2013)
set -euo pipefail
base="$(realpath "${1:?usage: bench/ab_outputs.sh BASE_BIN NEW_BIN}")"
new="$(realpath "${2:?usage: bench/ab_outputs.sh BASE_BIN NEW_BIN}")"
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${FERRITE_DATA:-$root/../shared/data/fer2013}"
matmul=f32
grep -q avx512_bf16 /proc/cpuinfo && matmul=bf16
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | matmul $matmul | $(date -u +%F)"
same() { # name, then a command with BIN and OUT placeholders run for both binaries
  local name="$1"; shift
  for which in base new; do
    local bin="$base"; [ "$which" = new ] && bin="$new"
    mkdir -p "$work/$which"
    (cd "$work/$which" && eval "${*//BIN/$bin}") > "$work/$which/$name.out" 2>/dev/null
  done
  if ! [ -s "$work/base/$name.out" ]; then echo "FAILED: $name (no output)"; elif cmp -s "$work/base/$name.out" "$work/new/$name.out"; then echo "same: $name ($(wc -c < "$work/new/$name.out") bytes)"; else echo "DIFFERENT: $name"; diff "$work/base/$name.out" "$work/new/$name.out" | head -20; fi
}
for arch in reference compact; do
  same "summary-$arch" "BIN summary --arch $arch --diagram d.svg | grep -v 'diagram written' && cat d.svg"
done
same "summary-embedded-shape" "BIN summary --arch compact --width 28 --crop 40 --stem-convs 1"
same onnx-export "BIN export --model '$root/models/default.ferrite' --out m.onnx >/dev/null && cat m.onnx | md5sum"
same detect-photos "BIN detect '$root/tests/fixtures/photos'"
if [ -d "$data/val" ]; then
  same evaluate-ferplus "BIN --matmul $matmul evaluate --data '$data/val' --ferplus | grep -v '^model '"
  same brief-training "BIN --matmul $matmul train --data '$data/val' --val '$data/val' --out run --arch compact --width 16 --epochs 2 --max-per-class 60 --batch-size 32 --replicas 2 --dropout 0.3 >/dev/null 2>&1; cut -d, -f1-6 run/metrics.csv"
else
  echo "skipped evaluate and training: no FER2013 at $data (set FERRITE_DATA)"
fi
