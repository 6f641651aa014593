#!/usr/bin/env bash
# Small faces (issue 32: faces in a crowd or an audience video are 25-60 px): models side by side
# on FER+ val with every face seen at 24, 32 and 40 px (`evaluate --face-size`: shrunk to that
# crop size and enlarged back to 48, as the pipeline gives a face of that size), and through the
# whole pipeline on wild/ with each photo shrunk to 140, 100 and 70 px in the middle of a 640x360
# frame (the committed coffee.jpg, blurred, around it: no face, and no flat border in the crop). Writes docs/runs/NAME/
# LABEL-face{24,32,40}.{txt,json}, LABEL-frame{140,100,70}.{txt,json} (kept on a re-run; docs/runs/measure.sh) and
# small-faces.md. The frames are made once into runs/small-wild/ (ffmpeg, a few minutes).
# Usage: docs/runs/collect_small_faces.sh NAME LABEL=MODEL [LABEL=MODEL ...]
set -euo pipefail
runs="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$runs/../.." && pwd)"
here="$runs/${1:?usage: collect_small_faces.sh NAME LABEL=MODEL...}"
shift
[ $# -gt 0 ] || { echo "usage: collect_small_faces.sh NAME LABEL=MODEL..." >&2; exit 2; }
data="${FERRITE_DATA_ROOT:-$root/../shared/data}"
bin="${FERRITE_BIN:-$root/target/release/ferrite}"
. "$runs/measure.sh"
frames="$root/runs/small-wild"
sizes=(140 100 70)
mkdir -p "$here"
for s in "${sizes[@]}"; do
  [ -f "$frames/$s/.done" ] && continue
  rm -rf "$frames/$s"
  for dir in "$data/wild"/*/; do
    cls="$(basename "$dir")"
    mkdir -p "$frames/$s/$cls"
    for f in "$dir"*.jpg; do
      ffmpeg -nostdin -v error -y -i "$root/tests/fixtures/photos/coffee.jpg" -i "$f" -filter_complex \
        "[0]format=rgb24,scale=640:360,boxblur=3[bg];[1]format=rgb24,scale=$s:$s:flags=area[fg];[bg][fg]overlay=(W-w)/2:(H-h)/2" \
        -q:v 2 "$frames/$s/$cls/$(basename "$f")" || echo "skipped $f" >&2
    done
  done
  touch "$frames/$s/.done"
done
labels=()
for spec in "$@"; do
  label="${spec%%=*}"; model="${spec#*=}"
  labels+=("$label")
  for what in face24 face32 face40 frame140 frame100 frame70; do
    case "$what" in
      face*) args=(--data "$data/fer2013/val" --ferplus --face-size "${what#face}") ;;
      frame*) args=(--data "$frames/${what#frame}" --detect) ;;
    esac
    measure "$here" "$label" "$what" "$model" "${args[@]}"
  done
  echo "$label done" >&2
done
python3 - "$here" "${labels[@]}" <<'PY'
import json, os, sys
here, labels = sys.argv[1], sys.argv[2:]
rep = lambda n: (lambda d: d.get("report") or d.get("photos"))(json.load(open(os.path.join(here, n + ".json"))))
faces, frames = ["face24", "face32", "face40"], ["frame140", "frame100", "frame70"]
out = ["FER+ val majority accuracy with every face seen at 24, 32, 40 px; wild/ photos shrunk to 140,",
       "100, 70 px in a 640x360 frame: labelled right of all photos (of the photos where a face was found).", "",
       "| model | FER+ val, 24 px | 32 px | 40 px | wild/ frame, 140 px | 100 px | 70 px |",
       "|---|---|---|---|---|---|---|"]
for l in labels:
    cells = ["%.2f%%" % (100 * rep(f"{l}-{c}")["accuracy"]) for c in faces]
    for c in frames:
        r = rep(f"{l}-{c}")
        cells.append("%.2f%% (%.2f%%)" % (100 * r["accuracy"], 100 * r["found"]["accuracy"]))
    out.append(f"| {l} | " + " | ".join(cells) + " |")
open(os.path.join(here, "small-faces.md"), "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
