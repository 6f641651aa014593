#!/usr/bin/env bash
# Model files side by side (issue 32): FER+ majority on val/, the full pipeline on wild/, and
# agreement with the teacher on val/ (its top class as the label, as collect_distill.sh), each
# model as it is (its folded prior correction), writing into docs/runs/NAME: one
# `LABEL-{ferplus,wild,teacher}.{txt,json}` per model (kept on a re-run) and `summary.md`.
# Usage: docs/runs/collect_models.sh NAME TEACHER_VAL_CSV LABEL=MODEL [LABEL=MODEL ...]
#   (MODEL: a model file, run directory or embedded:NAME; DATA_ROOT from FERRITE_DATA_ROOT,
#   default ../shared/data)
set -euo pipefail
runs="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$runs/../.." && pwd)"
here="$runs/${1:?usage: collect_models.sh NAME TEACHER_VAL_CSV LABEL=MODEL...}"
teacher="${2:?usage}"
shift 2
[ $# -gt 0 ] || { echo "usage: collect_models.sh NAME TEACHER_VAL_CSV LABEL=MODEL..." >&2; exit 2; }
data="${FERRITE_DATA_ROOT:-$root/../shared/data}"
bin="${FERRITE_BIN:-$root/target/release/ferrite}"
. "$runs/measure.sh"
mkdir -p "$here"
agree="$(mktemp -d)"
trap 'rm -rf "$agree"' EXIT
python3 "$runs/teacher_labels.py" "$teacher" "$data/fer2013/val" "$agree"
labels=()
for spec in "$@"; do
  label="${spec%%=*}"; model="${spec#*=}"
  labels+=("$label")
  for what in ferplus wild teacher; do
    case "$what" in
      ferplus) args=(--data "$data/fer2013/val" --ferplus) ;;
      wild) args=(--data "$data/wild" --detect) ;;
      teacher) args=(--data "$agree") ;;
    esac
    measure "$here" "$label" "$what" "$model" "${args[@]}"
  done
  echo "$label done" >&2
done
python3 - "$here" "${labels[@]}" <<'PY'
import json, os, sys
here, labels = sys.argv[1], sys.argv[2:]
rep = lambda n: (lambda d: d.get("report") or d.get("photos"))(json.load(open(os.path.join(here, n + ".json"))))
classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
out = ["| model | FER+ val acc | FER+ val balanced | wild acc | wild balanced | agreement with the teacher on val |",
       "|---|---|---|---|---|---|"]
recall = {}
for l in labels:
    fp, wi, te = rep(f"{l}-ferplus"), rep(f"{l}-wild"), rep(f"{l}-teacher")
    out.append("| %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.2f%% |" % (
        l, 100 * fp["accuracy"], 100 * fp["balanced_accuracy"], 100 * wi["accuracy"], 100 * wi["balanced_accuracy"], 100 * te["accuracy"]))
    recall[l] = (fp, wi)
def per_class(r):
    # A sample report: {class, recall, ...} per class; the photos report: [class, photos, no face, right].
    return {c["class"]: c["recall"] for c in r["per_class"]} if isinstance(r["per_class"][0], dict) else {c[0]: c[3] / c[1] for c in r["per_class"]}
out += ["", "Per-class recall, FER+ val / wild:", "", "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
for l in labels:
    fp, wi = (per_class(r) for r in recall[l])
    out.append(f"| {l} | " + " | ".join(
        "%s / %s" % ("%.1f" % (100 * fp[c]) if c in fp else "-", "%.1f" % (100 * wi[c]) if c in wi else "-") for c in classes) + " |")
open(os.path.join(here, "summary.md"), "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
