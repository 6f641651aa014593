#!/usr/bin/env bash
# Issue 43's ensemble lever, measured without training: every embedded model's probabilities on
# val/ (`ferrite predict --json`, single view, the model's own contrast and prior correction),
# then frontier.py's mixtures and their two accuracies. Writes runs/ensemble-frontier/*.jsonl and
# docs/runs/ensemble-frontier/summary.md.
# Usage: docs/runs/ensemble-frontier/run.sh   (DATA_ROOT from FERRITE_DATA_ROOT, default ../shared/data)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
data="${FERRITE_DATA_ROOT:-$root/../shared/data}"
bin="${FERRITE_BIN:-$root/target/release/ferrite}"
out="$root/runs/ensemble-frontier"
mkdir -p "$out"
for m in default fer2013 both-labels distilled; do
  find "$data/fer2013/val" -name '*.jpg' | sort | xargs "$bin" predict --json --model "embedded:$m" > "$out/$m.jsonl"
done
votes="$data/fer2013/ferplus/val.csv"
{
  echo "default + fer2013 + both-labels:"; echo
  python3 "$here/frontier.py" "$votes" "$out" default fer2013 both-labels
  echo; echo "default + distilled + fer2013:"; echo
  python3 "$here/frontier.py" "$votes" "$out" default distilled fer2013
} | tee "$here/summary.md"
