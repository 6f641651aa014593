#!/usr/bin/env bash
# Small faces in a crowd (issue 32): two collages of four committed group photos, each photo
# letterboxed into a 320x240 quarter of a 640x480 frame (28 faces of about 25-45 pixels; c4a:
# group1-4, 13 faces; c4b: group5, group6, group1, group3, 15 faces). Prints the faces found in
# each with the tiles off and with the defaults, and ms per frame on one thread (30 copies of
# c4b and of the 640x480 group1 frame, decode to classify), and face-api.js's detector on the
# collages when tools/teacher is installed. Usage: bench/collage.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/ferrite"
photos="$root/tests/fixtures/photos"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
cell="scale=320:240:force_original_aspect_ratio=decrease,pad=320:240:(ow-iw)/2:(oh-ih)/2"
collage() {
  local out="$1"; shift
  ffmpeg -loglevel error -y -i "$photos/$1" -i "$photos/$2" -i "$photos/$3" -i "$photos/$4" -filter_complex \
    "[0]$cell[a];[1]$cell[b];[2]$cell[c];[3]$cell[d];[a][b][c][d]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0" "$out"
}
mkdir -p "$tmp/collage" "$tmp/c" "$tmp/g"
collage "$tmp/collage/c4a.jpg" group1.jpg group2.jpg group3.jpg group4.jpg
collage "$tmp/collage/c4b.jpg" group5.jpg group6.jpg group1.jpg group3.jpg
for i in $(seq -w 0 29); do
  cp "$tmp/collage/c4b.jpg" "$tmp/c/f$i.jpg"
  ffmpeg -loglevel error -y -i "$photos/group1.jpg" -vf \
    "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2" "$tmp/g/f$i.jpg"
done
ms() {
  local start end
  start=$(date +%s.%N)
  "$bin" --threads 1 detect "$@" > /dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "import sys; print('%.1f' % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000 / 30))" "$start" "$end"
}
echo "| --small-face-tiles | c4a (13 faces) | c4b (15 faces) | ms per c4b frame | ms per group1 frame |"
echo "|---|---|---|---|---|"
for s in 0 default; do
  flags=()
  [ "$s" = 0 ] && flags=(--small-face-tiles 0)
  "$bin" detect "$tmp/collage" --format csv "${flags[@]}" > "$tmp/found.csv" 2> /dev/null
  a=$(grep -c '/c4a.jpg,' "$tmp/found.csv" || true)
  b=$(grep -c '/c4b.jpg,' "$tmp/found.csv" || true)
  echo "| $s | $a | $b | $(ms "$tmp/c" "${flags[@]}") | $(ms "$tmp/g" "${flags[@]}") |"
done
# The reference beside it: face-api.js's SSD MobileNet v1 (tools/teacher, after `npm ci` there).
if [ -d "$root/tools/teacher/node_modules/@vladmandic/face-api" ]; then
  node "$root/tools/teacher/detect_faces.cjs" "$tmp/collage" > "$tmp/faceapi.csv"
  echo "| face-api.js 1.7.15 SSD MobileNet v1 | $(grep -c '/c4a.jpg,' "$tmp/faceapi.csv" || true) | $(grep -c '/c4b.jpg,' "$tmp/faceapi.csv" || true) | | |"
else
  echo "(face-api.js not installed: npm ci --prefix tools/teacher for its row)"
fi
