#!/usr/bin/env bash
# Faces cut by the frame's edge (issue 32): examples/edge_faces.rs on the committed photos
# (ferrite's BlazeFace pair and its default, YuNet first, each without and with the mirrored
# margin), and the same cut crops through face-api.js's
# SSD MobileNet v1 (tools/teacher/detect_faces.cjs, when tools/teacher is installed), scored
# alike: a cut face is found when a box, clamped to the crop, overlaps its visible part with
# IoU >= 0.3. Usage: bench/edge_faces.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --quiet --example edge_faces
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
# The photos with faces only (the cat and the coffee cup hold none).
"$root/target/release/examples/edge_faces" --pads 0,0.04 --models both,yunet-first --save "$tmp/cuts" "$root"/tests/fixtures/photos/{group?,astronaut,camera}.jpg
if [ ! -d "$root/tools/teacher/node_modules/@vladmandic/face-api" ]; then
  echo "(face-api.js not installed: npm ci --prefix tools/teacher for its row)"
  exit 0
fi
node "$root/tools/teacher/detect_faces.cjs" "$tmp/cuts" > "$tmp/faceapi.csv"
python3 - "$tmp/cuts" "$tmp/faceapi.csv" <<'PY'
import csv, os, sys
cuts, found = sys.argv[1], sys.argv[2]

def clamp(b, w, h):
    x0, y0 = min(max(b[0], 0), w), min(max(b[1], 0), h)
    x1, y1 = min(max(b[0] + b[2], 0), w), min(max(b[1] + b[3], 0), h)
    return (x0, y0, x1 - x0, y1 - y0)

def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0

boxes = {}
for r in csv.DictReader(open(found)):
    name = os.path.basename(r["image"])
    boxes.setdefault(name, []).append(tuple(float(r[k]) for k in "x y w h".split()))
hit = total = 0
for r in csv.DictReader(open(os.path.join(cuts, "targets.csv"))):
    w, h = float(r["crop_width"]), float(r["crop_height"])
    target = tuple(float(r[k]) for k in "x y w h".split())
    total += 1
    hit += any(iou(clamp(b, w, h), target) >= 0.3 for b in boxes.get(r["file"], []))
print(f"| face-api.js 1.7.15 SSD MobileNet v1 | | {hit}/{total} ({100 * hit / max(total, 1):.1f}%) | | | | | | |")
PY
