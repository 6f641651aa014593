#!/usr/bin/env bash
# End-to-end video speed of `ferrite video` (decode, detect, classify, draw, encode) on a
# 640x480 video with five faces, and the per-stage milliseconds it reports.
# Usage: bench/video.sh [SECONDS] [extra ferrite video flags...]
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
"$root/target/release/ferrite" video "$tmp/in.mp4" --out "$tmp/annotated.mp4" --csv "$tmp/timeline.csv" "$@"
ffprobe -v error -show_entries stream=codec_type,avg_frame_rate,nb_frames -of csv=p=0 "$tmp/annotated.mp4"
