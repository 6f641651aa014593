#!/usr/bin/env bash
# End-to-end video speed of `ferrite video` (decode, detect, classify, draw, encode) on a
# 640x480 video with five faces, and the per-stage milliseconds it reports.
# With REF_BIN=path/to/another/ferrite (e.g. a build of an earlier commit) both binaries run
# alternately on the same input, ROUNDS times each (default 3), and the median frames per second
# of each and their ratio are printed: a change's speed measured side by side on one machine.
# Usage: [REF_BIN=...] [ROUNDS=3] bench/video.sh [SECONDS] [extra ferrite video flags...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
shift || true
cd "$root"
cargo build --release --quiet
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$root/bench/make_video.sh" "$tmp/in.mp4" "$secs"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
echo "input: 640x480, 25 fps, ${secs}s, 5 faces (bench/make_video.sh)"
echo "command: ferrite video in.mp4 --out annotated.mp4 --csv timeline.csv $*"
run() { "$1" video "$tmp/in.mp4" --out "$tmp/annotated.mp4" --csv "$tmp/timeline.csv" "${@:2}"; }
if [ -z "${REF_BIN:-}" ]; then
  run "$root/target/release/ferrite" "$@"
  ffprobe -v error -show_entries stream=codec_type,avg_frame_rate,nb_frames -of csv=p=0 "$tmp/annotated.mp4"
  exit 0
fi
fps() { sed -n 's/.* frame(s) in .* (\([0-9.]*\) fps).*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$tmp/this.txt"; : > "$tmp/ref.txt"
for _ in $(seq "${ROUNDS:-3}"); do
  run "$REF_BIN" "$@" | fps >> "$tmp/ref.txt"
  run "$root/target/release/ferrite" "$@" | fps >> "$tmp/this.txt"
done
this="$(median < "$tmp/this.txt")"; ref="$(median < "$tmp/ref.txt")"
echo "frames per second, median of ${ROUNDS:-3}: this build $this ($(paste -sd' ' "$tmp/this.txt")), reference $ref ($(paste -sd' ' "$tmp/ref.txt")) [$REF_BIN]"
awk -v a="$this" -v b="$ref" 'BEGIN {printf "ratio this/reference: %.3f\n", a / b}'
