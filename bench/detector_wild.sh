#!/usr/bin/env bash
# The whole face pipeline before and after the detector changes of issues 23 and 44, side by side in one
# run: the committed photos (bench/detector.sh's recall and false alarms), ../shared/data/wild/
# (photos where a face is found, labelled right), and ms per 640x480 frame on one thread.
# Usage: bench/detector_wild.sh [MODEL]   (default: the embedded model)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/target/release/ferrite"
wild="${FERRITE_WILD:-$root/../shared/data/wild}"
model=()
[ -n "${1:-}" ] && model=(--model "$1")
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# 20 frames of 640x480 (a group photo padded to 4:3) for the timing.
python3 - "$root/tests/fixtures/photos/group1.jpg" "$tmp/frames" <<'PY'
import sys, os, subprocess
os.makedirs(sys.argv[2])
for i in range(20):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", sys.argv[1], "-vf",
                    "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2",
                    os.path.join(sys.argv[2], f"f{i:02}.jpg")], check=True)
PY
# before = the pipeline of 2026-11-28 (BlazeFace back only, no padded retry, no alignment);
# session 16 = back with the padded retry and alignment; session 23 = back and full-range
# together, padded retry, alignment, no mirrored edge margin; pair = the defaults until issue 44
# (that and the mirrored edge margin, --edge-pad); yunet = YuNet alone; after = the defaults
# (YuNet first, the BlazeFace pair where it finds no face).
for which in before session16 session23 pair yunet after; do
  flags=()
  [ "$which" = before ] && flags=(--detector back --pad-retry 0 --no-align --edge-pad 0)
  [ "$which" = session16 ] && flags=(--detector back --edge-pad 0)
  [ "$which" = session23 ] && flags=(--detector both --edge-pad 0)
  [ "$which" = pair ] && flags=(--detector both)
  [ "$which" = yunet ] && flags=(--detector yunet)
  echo "== $which ${flags[*]:-(defaults)}"
  bench/detector.sh "${flags[@]}" | tail -1
  "$bin" evaluate --detect --data "$wild" "${model[@]}" "${flags[@]}" | sed -n '2,10p'
  start=$(date +%s.%N)
  "$bin" --threads 1 detect "$tmp/frames" "${model[@]}" "${flags[@]}" > /dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "import sys; print('640x480 frames, one thread: %.1f ms per frame (20 frames, model loading included)' % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000 / 20))" "$start" "$end"
done
