#!/usr/bin/env bash
# f32 against int8 inference of the embedded default model, in one run (issue 47):
# - ms per face at batch 1 and images per second over 64 faces, one thread
#   (`ferrite --threads 1 bench --embedded`, which also names the int8 kernel tract picks);
# - `ferrite video` on a 640x480 clip with five faces (bench/make_video.sh): frames per second
#   and each stage's ms per frame (the detector's included; it stays f32), `--precision f32`
#   and `--precision int8` alternately, ROUNDS times each (default 2), medians and the ratio.
# On a CPU without int8 dot products (AVX2 only) int8 is far slower: SECONDS defaults to 2.
# Usage: [ROUNDS=2] bench/int8.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-2}"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/ferrite"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
flags="$(grep -o -w -E 'avx512_vnni|avx_vnni|amx_int8|avx2' /proc/cpuinfo 2>/dev/null | sort -u | paste -sd' ' || true)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | ${flags:-no int8 flags} | $(date -u +%F)"
"$bin" --threads 1 bench --embedded --steps 4
"$root/bench/make_video.sh" "$tmp/in.mp4" "$secs"
echo "video: 640x480, 25 fps, ${secs}s, 5 faces; ferrite video in.mp4 --out annotated.mp4 --csv timeline.csv --precision P"
fps() { sed -n 's/.* frame(s) in .* (\([0-9.]*\) fps).*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for p in f32 int8; do : > "$tmp/$p.txt"; done
for _ in $(seq "${ROUNDS:-2}"); do
  for p in f32 int8; do
    "$bin" video "$tmp/in.mp4" --out "$tmp/annotated.mp4" --csv "$tmp/timeline.csv" --precision "$p" > "$tmp/out.txt"
    fps < "$tmp/out.txt" >> "$tmp/$p.txt"
    echo "  $p: $(grep 'ms per frame' "$tmp/out.txt")"
  done
done
a="$(median < "$tmp/f32.txt")"; b="$(median < "$tmp/int8.txt")"
echo "frames per second, median of ${ROUNDS:-2}: f32 $a ($(paste -sd' ' "$tmp/f32.txt")), int8 $b ($(paste -sd' ' "$tmp/int8.txt"))"
awk -v a="$a" -v b="$b" 'BEGIN {printf "ratio int8/f32: %.3f\n", b / a}'
