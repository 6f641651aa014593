#!/usr/bin/env bash
# Regenerate the examples in this folder with the embedded model: an annotated group photo, and
# the CSV timeline and per-person plot of a 10-second panning video with five faces
# (bench/make_video.sh, made from tests/fixtures/photos/group5.jpg).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/ferrite"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" detect tests/fixtures/photos/group4.jpg tests/fixtures/photos/group6.jpg --out "$tmp/photos" --format json
cp "$tmp/photos/group4.jpg" "$here/group4-annotated.jpg"
cp "$tmp/photos/group6.jpg" "$here/group6-annotated.jpg"
cp "$tmp/photos/results.json" "$here/photos.json"
bench/make_video.sh "$tmp/in.mp4" 10
"$bin" video "$tmp/in.mp4" --csv "$here/timeline.csv" --plot "$here/timeline.png" --out "$tmp/annotated.mp4"
# One annotated frame of the video (the 5-second mark) as a picture.
ffmpeg -nostdin -v error -y -ss 5 -i "$tmp/annotated.mp4" -frames:v 1 "$here/video-frame.jpg"
# A real clip with talking faces at several angles (bench/clip.sh: Megamind.avi from Debian's
# opencv-doc), before and after issue 23: before = the FER2013-label model, faces cropped as
# boxed (no alignment, no padded retry), the old smoothing (0.08 s, no hysteresis, no cut
# detection); after = the defaults. Four frames of each annotated video, tiled 2x2.
clip="$(bench/clip.sh)"
"$bin" video "$clip" --out "$tmp/before.mp4" --csv "$here/clip-before.csv" \
  --model embedded:fer2013 --no-align --pad-retry 0 --smooth-seconds 0.08 --hysteresis 0 --cut-threshold 0
"$bin" video "$clip" --out "$tmp/after.mp4" --csv "$here/clip-after.csv"
for v in before after; do
  ffmpeg -nostdin -v error -y -i "$tmp/$v.mp4" \
    -vf "select='eq(n\,12)+eq(n\,108)+eq(n\,156)+eq(n\,228)',scale=480:-2,tile=2x2" \
    -frames:v 1 -q:v 4 "$here/clip-$v.jpg"
done
