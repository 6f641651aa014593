#!/usr/bin/env bash
# Make a 640x480, 25 fps test video with several faces and an audio track from a committed
# photo (tests/fixtures/photos/group5.jpg: five faces), panning across it.
# Usage: bench/make_video.sh OUT.mp4 [SECONDS] [PHOTO]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
secs="${2:-10}"
photo="${3:-$root/tests/fixtures/photos/group5.jpg}"
ffmpeg -nostdin -v error -y -loop 1 -framerate 25 -i "$photo" \
  -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=$secs" \
  -vf "scale=900:-2,crop=640:480:x='(iw-640)*t/$secs':y='(ih-480)/2'" \
  -t "$secs" -r 25 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$out"
