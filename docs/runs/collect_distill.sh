#!/usr/bin/env bash
# Evaluate a distillation run (issue 32) beside the embedded default model, writing into
# docs/runs/NAME: FER+ majority on val/ and the full pipeline on wild/ at prior corrections 0,
# 0.25 and 0.5, and each model's agreement with the teacher on val/ (the teacher's top class
# taken as the label: tools/teacher's val.csv), then `summary.md`.
# The prior correction exported is chosen by the rule of collect_ferplus.sh (2026-12-01): the
# highest mean of FER+ val accuracy and wild accuracy (ties: the smaller).
# Usage: docs/runs/collect_distill.sh RUN_DIR NAME TEACHER_VAL_CSV [DATA_ROOT]
set -euo pipefail
runs="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$runs/../.." && pwd)"
run="${1:?usage: collect_distill.sh RUN_DIR NAME TEACHER_VAL_CSV [DATA_ROOT]}"
here="$runs/${2:?usage}"
teacher="${3:?usage}"
data="${4:-$root/../shared/data}"
bin="${FERRITE_BIN:-$root/target/release/ferrite}"
mkdir -p "$here"
cp "$run/config.json" "$run/metrics.csv" "$run/curves.png" "$here/"
# val/ relabelled by the teacher's top class (symbolic links), for the agreement rows.
agree="$(mktemp -d)"
trap 'rm -rf "$agree"' EXIT
python3 "$runs/teacher_labels.py" "$teacher" "$data/fer2013/val" "$agree"
evaluate() {  # MODEL_ARGS... -- NAME EVAL_ARGS...
  local model=() name
  while [ "$1" != -- ]; do model+=("$1"); shift; done
  shift; name="$1"; shift
  local tmp; tmp="$(mktemp -d)"
  "$bin" evaluate "${model[@]}" "$@" --out "$tmp" > "$here/$name.txt"
  cp "$tmp/evaluate.json" "$here/$name.json"
  cp "$tmp/confusion.png" "$here/$name-confusion.png" 2>/dev/null || true
  rm -rf "$tmp"
}
for tau in 0 0.25 0.5; do
  evaluate --model "$run" -- "run-ferplus-tau$tau" --data "$data/fer2013/val" --ferplus --prior-correction "$tau"
  evaluate --model "$run" -- "run-wild-tau$tau" --data "$data/wild" --detect --prior-correction "$tau"
  evaluate --model "$run" -- "run-teacher-tau$tau" --data "$agree" --prior-correction "$tau"
done
evaluate -- "embedded-ferplus" --data "$data/fer2013/val" --ferplus
evaluate -- "embedded-wild" --data "$data/wild" --detect
evaluate -- "embedded-teacher" --data "$agree"
python3 - "$here" <<'PY'
import json, os, sys
here = sys.argv[1]
j = lambda n: json.load(open(os.path.join(here, n + ".json")))
rep = lambda d: d.get("report") or d.get("photos")
rows, best = [], None
for name, files in [("embedded default (before)", ("embedded-ferplus", "embedded-wild", "embedded-teacher"))] + \
        [(f"this run, prior correction {t}", (f"run-ferplus-tau{t}", f"run-wild-tau{t}", f"run-teacher-tau{t}")) for t in ("0", "0.25", "0.5")]:
    fp, wi, te = (rep(j(f)) for f in files)
    rows.append((name, fp, wi, te))
    if name.startswith("this run"):
        score = (fp["accuracy"] + wi["accuracy"]) / 2
        if best is None or score > best[1] + 1e-12:
            best = (name.split()[-1], score)
with open(os.path.join(here, "summary.md"), "w") as f:
    f.write("| model | FER+ val acc | FER+ val balanced | wild acc | wild balanced | agreement with the teacher on val |\n|---|---|---|---|---|---|\n")
    for name, fp, wi, te in rows:
        f.write("| %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.2f%% |\n" % (name, 100 * fp["accuracy"], 100 * fp["balanced_accuracy"], 100 * wi["accuracy"], 100 * wi["balanced_accuracy"], 100 * te["accuracy"]))
    f.write("\nchosen by the rule (mean of FER+ val and wild accuracy): prior correction %s\n" % best[0])
print(open(os.path.join(here, "summary.md")).read())
PY
