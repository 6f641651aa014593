#!/usr/bin/env bash
# Face-detector recall and false alarms on the committed photos (tests/fixtures/photos, face
# counts by eye in counts.txt), by count per image: found = min(detected, true), false alarms =
# detected beyond the true count. Usage: bench/detector.sh [extra ferrite detect flags, e.g. --tiles 2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --quiet
photos="$root/tests/fixtures/photos"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s.%N)
"$root/target/release/ferrite" --threads 1 detect "$photos" --format csv "$@" > "$tmp/results.csv" 2> "$tmp/summary.txt"
end=$(date +%s.%N)
python3 - "$photos/counts.txt" "$tmp/results.csv" "$start" "$end" <<'PY'
import csv, sys, collections
truth = {}
for line in open(sys.argv[1]):
    if line.strip() and not line.startswith("#"):
        name, n = line.split()
        truth[name] = int(n)
found = collections.Counter(r["image"].rsplit("/", 1)[-1] for r in csv.DictReader(open(sys.argv[2])))
print("| image | faces | detected |")
print("|---|---|---|")
hit = fa = 0
for name, n in truth.items():
    d = found.get(name, 0)
    hit += min(d, n)
    fa += max(0, d - n)
    print(f"| {name} | {n} | {d} |")
total = sum(truth.values())
secs = float(sys.argv[4]) - float(sys.argv[3])
print(f"\nrecall {hit}/{total} ({100 * hit / total:.0f}%), false alarms {fa}, "
      f"{len(truth)} images in {secs:.1f}s on one thread (model loading included)")
PY
