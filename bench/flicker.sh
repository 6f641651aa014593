#!/usr/bin/env bash
# Label flicker of talking faces on a real clip (bench/clip.sh: Megamind.avi from Debian's
# opencv-doc): label changes per second of tracked face, for the smoothing settings before and
# after issue 23 and with none at all, same model and detector. The lag of the smoothing on a
# real change is measured on a synthetic step by the unit test
# track::tests::hysteresis_stops_flicker_and_follows_a_step_within_half_a_second.
# Usage: bench/flicker.sh [extra ferrite video flags...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --quiet
clip="$(bench/clip.sh)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
echo "clip: $clip ($(ffprobe -v error -show_entries stream=width,height,avg_frame_rate -of csv=p=0 "$clip" | head -n 1))"
# Label changes per second of track time, per track and in all, from a --csv timeline.
changes() {
  awk -F, 'NR > 1 {
      t = $3; if (!(t in first)) { first[t] = $2; n[t] = 0; ch[t] = 0 } else if ($10 != last[t]) ch[t]++
      last[t] = $10; lastt[t] = $2; n[t]++ }
    END { for (t in n) { d = lastt[t] - first[t]; if (d <= 0) continue; tot += ch[t]; dur += d }
      printf "%d label changes in %.1f track-seconds: %.2f per second\n", tot, dur, tot / dur }' "$1"
}
# "before": the settings before issue 23 (exponential smoothing with weight 0.6 per frame,
# i.e. a time constant of 1 / (24 ln(1/0.6)) = 0.08 s at 24 fps, no hysteresis).
for setting in "none:--smooth-seconds 0 --hysteresis 0 --cut-threshold 0" "before:--smooth-seconds 0.08 --hysteresis 0 --cut-threshold 0" "after (defaults):"; do
  name="${setting%%:*}"
  flags="${setting#*:}"
  # shellcheck disable=SC2086
  "$root/target/release/ferrite" video "$clip" --csv "$tmp/t.csv" $flags "$@" >/dev/null 2>&1
  printf '%-18s %-58s %s\n' "$name" "${flags:-(none)}" "$(changes "$tmp/t.csv")"
done
