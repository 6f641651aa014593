#!/usr/bin/env bash
# f32 against int8 accuracy of the embedded default on FER+ val (majority), FER2013 val (its own
# labels) and wild/ through the whole pipeline. Writes the outputs beside this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
data="${FERRITE_DATA:-$root/../shared/data}"
cd "$root" && cargo build --release --quiet
bin="$root/target/release/ferrite"
for p in f32 int8; do
  "$bin" evaluate --data "$data/fer2013/val" --ferplus --precision "$p" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' > "$here/ferplus-$p.txt"
  "$bin" evaluate --data "$data/fer2013/val" --precision "$p" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' > "$here/own-$p.txt"
  "$bin" evaluate --data "$data/wild" --detect --precision "$p" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' > "$here/wild-$p.txt"
done
grep -H -E "^samples|^photos" "$here"/*.txt
