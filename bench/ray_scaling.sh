#!/usr/bin/env bash
# ferrite on Ray against the CLI, in one run (issue 33): images/s and video frames/s for the CLI
# on one core, the Ray job (`python -m ferrite.ray analyze`) with one worker, and with two workers
# on a two-node cluster (1 CPU per node). The cluster runs in a private network namespace
# (loopback only; needs root) and is stopped at the end. Times are end to end (the driver's: Ray
# connection, planning, actor start-up and model loading included).
# Usage: bench/ray_scaling.sh [COPIES] [VIDEO_SECONDS]   (images: the 9 committed photos x COPIES,
# default 200; video: a VIDEO_SECONDS (default 600), 10 fps, 320x240 clip of a group photo, 300-frame
# segments; about 15 minutes on two cores). Each job also pays a fixed cost (driver and Ray Data
# start-up, actor start-up and model loading, Ray's own actors), which on a two-core machine
# competes with the workers; a job of a few seconds a worker measures that cost, not the scaling
# (`bench/ray_scaling.sh 100 120`: 2 workers 1.49x on a 30 s video job).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
copies="${1:-200}"
video_s="${2:-600}"
cargo build --release --quiet
venv="$root/bench/.venv-py"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy pillow
"$venv/bin/pip" install --quiet "./python[ray]"
tmp="$(mktemp -d /tmp/ferrite-bench-XXXX)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/photos"
for r in $(seq 1 "$copies"); do
  for p in tests/fixtures/photos/*.jpg; do cp "$p" "$tmp/photos/r${r}_$(basename "$p")"; done
done
ffmpeg -v error -y -loop 1 -t "$video_s" -i tests/fixtures/photos/group1.jpg -vf scale=320:240,setsar=1 -r 10 -pix_fmt yuv420p "$tmp/clip.mp4"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; Ray $("$venv/bin/python" -c 'import ray; print(ray.__version__)')"
bin="$root/target/release/ferrite"
t0=$(date +%s.%N); "$bin" --threads 1 detect "$tmp/photos" --format csv > "$tmp/cli.csv" 2>/dev/null; t1=$(date +%s.%N)
"$bin" --threads 1 video "$tmp/clip.mp4" --csv "$tmp/cli_video.csv" --detect-every 3 > /dev/null 2>&1; t2=$(date +%s.%N)
echo "$t0 $t1 $t2" > "$tmp/cli_times"
cat > "$tmp/cluster.sh" <<SH
set -euo pipefail
ip link set lo up
export PATH="$venv/bin:\$PATH"
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
ray start --head --num-cpus=1 --port=6395 --include-dashboard=false --disable-usage-stats --temp-dir="$tmp/ray" > "$tmp/head.log" 2>&1
ray start --address=127.0.0.1:6395 --num-cpus=1 --disable-usage-stats > "$tmp/node2.log" 2>&1
for w in 1 2; do
  python -m ferrite.ray analyze "$tmp/photos" --output "$tmp/img\$w" --address 127.0.0.1:6395 --workers \$w > /dev/null 2> "$tmp/img\$w.log"
  python -m ferrite.ray analyze "$tmp/clip.mp4" --output "$tmp/vid\$w" --address 127.0.0.1:6395 --workers \$w --detect-every 3 --segment-frames 300 > /dev/null 2> "$tmp/vid\$w.log"
done
SH
unshare -n bash "$tmp/cluster.sh"
"$venv/bin/python" - "$tmp" "$copies" <<'PY'
import json, sys
tmp, copies = sys.argv[1], int(sys.argv[2])
t0, t1, t2 = map(float, open(f"{tmp}/cli_times").read().split())
images = 9 * copies
s = {k: json.load(open(f"{tmp}/{k}/summary.json")) for k in ("img1", "img2", "vid1", "vid2")}
frames = s["vid1"]["video_frames"]
assert s["img1"]["images"] == s["img2"]["images"] == images and s["vid2"]["video_frames"] == frames > 0, s
assert sum(1 for line in open(f"{tmp}/cli_video.csv")) > 1
cli_img, cli_vid = images / (t1 - t0), frames / (t2 - t1)
rows = [("CLI, one core (`--threads 1`)", cli_img, cli_vid),
        ("Ray, 1 worker", images / s["img1"]["seconds"], frames / s["vid1"]["seconds"]),
        ("Ray, 2 workers (two nodes)", images / s["img2"]["seconds"], frames / s["vid2"]["seconds"])]
print(f"\n{images} images, a {frames}-frame video ({s['vid1']['items']} segments)\n")
print("| run | images/s | video frames/s |")
print("|---|---|---|")
for name, a, b in rows:
    print(f"| {name} | {a:.2f} | {b:.2f} |")
print(f"\nRay 1 worker vs the CLI on one core: images {100 * (1 - rows[1][1] / cli_img):+.1f}% slower, "
      f"video {100 * (1 - rows[1][2] / cli_vid):+.1f}% slower (goal: at most 15%)")
print(f"2 workers vs 1: images {rows[2][1] / rows[1][1]:.2f}x, video {rows[2][2] / rows[1][2]:.2f}x (goal: at least 1.7x)")
print("\nWhere the Ray jobs' time went (the job's seconds; until the first batch began: listing, planning,")
print("connecting, actor start-up; the workers' seconds in batches, summed over workers):\n")
print("| job | seconds | first batch after (s) | worker-seconds in batches |")
print("|---|---|---|---|")
for k in ("img1", "img2", "vid1", "vid2"):
    print(f"| {k} | {s[k]['seconds']:.1f} | {s[k]['first_batch_after_s']:.1f} | {s[k]['worker_seconds']:.1f} |")
PY
