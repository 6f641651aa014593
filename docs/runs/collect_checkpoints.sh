#!/usr/bin/env bash
# Both label sets per kept checkpoint (issue 43): FER+ majority and FER2013's own labels on val/,
# each kept epoch of a run at one prior correction, so the epoch to ship is chosen with both
# scores in view (the trainer validates on FER+ only). Writes docs/runs/NAME/epoch-N-{ferplus,
# fer2013}.{txt,json} (kept on a re-run) and checkpoints.md.
# Usage: docs/runs/collect_checkpoints.sh RUN_DIR NAME [PRIOR_CORRECTION]   (DATA_ROOT from
#   FERRITE_DATA_ROOT, default ../shared/data)
set -euo pipefail
runs="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$runs/../.." && pwd)"
run="${1:?usage: collect_checkpoints.sh RUN_DIR NAME [PRIOR_CORRECTION]}"
here="$runs/${2:?usage: collect_checkpoints.sh RUN_DIR NAME [PRIOR_CORRECTION]}"
tau="${3:-0}"
data="${FERRITE_DATA_ROOT:-$root/../shared/data}"
bin="${FERRITE_BIN:-$root/target/release/ferrite}"
. "$runs/measure.sh"
mkdir -p "$here"
for ckpt in "$run"/checkpoints/epoch-*/; do
  label="$(basename "$ckpt")-tau$tau"
  measure "$here" "$label" ferplus "$ckpt/model.ferrite" --data "$data/fer2013/val" --ferplus --prior-correction "$tau"
  measure "$here" "$label" fer2013 "$ckpt/model.ferrite" --data "$data/fer2013/val" --prior-correction "$tau"
  rm -f "$here/$label"-*-confusion.png
done
# The table lists every epoch measured so far (checkpoints the run has since dropped included).
python3 - "$here" "$tau" <<'PY'
import glob, json, os, sys
here, tau = sys.argv[1], sys.argv[2]
labels = sorted(os.path.basename(p)[: -len("-ferplus.json")] for p in glob.glob(os.path.join(here, f"epoch-*-tau{tau}-ferplus.json")))
rep = lambda n: json.load(open(os.path.join(here, n + ".json")))["report"]
out = os.path.join(here, f"checkpoints-tau{tau}.md")
with open(out, "w") as f:
    f.write(f"prior correction {tau}\n\n| checkpoint | FER+ val acc | FER+ balanced | FER2013 val acc | FER2013 balanced | mean of the two accuracies |\n|---|---|---|---|---|---|\n")
    for l in labels:
        a, b = rep(l + "-ferplus"), rep(l + "-fer2013")
        f.write("| %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.2f%% |\n" % (l, 100 * a["accuracy"], 100 * a["balanced_accuracy"], 100 * b["accuracy"], 100 * b["balanced_accuracy"], 50 * (a["accuracy"] + b["accuracy"])))
print(open(out).read())
PY
