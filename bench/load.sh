#!/usr/bin/env bash
# Bounded load test of POST /api/v1/analyze on loopback with wrk (Debian package), a real photo
# (tests/fixtures/photos/group4.jpg, 4 faces). Reports requests/s, p50/p99 latency, the server's
# memory (RSS) before/during/after, and checks that oversize and malformed uploads sent during
# the run get 4xx JSON answers. Usage: bench/load.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-30}"
conns="${2:-8}"
cd "$root"
command -v wrk >/dev/null || { echo "needs wrk (Debian: apt install wrk)"; exit 1; }
cargo build --release --quiet
tmp="$(mktemp -d)"
"$root/target/release/ferrite" serve --addr 127.0.0.1:0 > "$tmp/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$tmp/serve.log" && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$tmp/serve.log" | head -1)"
rss() { awk '/VmRSS/ {print $2/1024 " MiB"}' "/proc/$pid/status"; }
photo="$root/tests/fixtures/photos/group4.jpg"
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = io.open("$photo", "rb"); wrk.body = f:read("*all"); f:close()
done = function(summary, latency, requests)
  io.write(string.format("requests/s %.1f | p50 %.1f ms | p99 %.1f ms | errors %d non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
LUA
curl -s -o /dev/null -X POST -H 'Content-Type: image/jpeg' --data-binary @"$photo" "${url}api/v1/analyze"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F)"
echo "server RSS after warm-up: $(rss)"
wrk -t 2 -c "$conns" -d "${secs}s" --timeout 30s -s "$tmp/post.lua" "${url}api/v1/analyze" > "$tmp/wrk.txt" &
wrk_pid=$!
# Bad uploads while the load runs: each must be a 4xx JSON error.
sleep 2
head -c 12000000 /dev/zero > "$tmp/big.bin"
check() {
  local want="$1"; shift
  local code; code="$(curl -s -o "$tmp/body.json" -w '%{http_code}' "$@")"
  if [ "$code" != "$want" ] || ! grep -q '"error"' "$tmp/body.json"; then echo "FAIL: expected $want JSON, got $code $(head -c 200 "$tmp/body.json")"; exit 1; fi
  echo "  $want $(head -c 120 "$tmp/body.json")"
}
echo "bad uploads during the run:"
check 413 -X POST -H 'Content-Type: image/jpeg' --data-binary @"$tmp/big.bin" "${url}api/v1/analyze"
check 415 -X POST -H 'Content-Type: image/jpeg' --data-binary 'not an image' "${url}api/v1/analyze"
check 400 -X POST -H 'Content-Type: image/jpeg' --data-binary '' "${url}api/v1/analyze"
check 415 -X POST -H 'Content-Type: application/json' --data-binary '{}' "${url}api/v1/analyze"
for k in 1 2 3; do sleep $((secs / 4)); echo "server RSS during the run ($k): $(rss)"; done
wait $wrk_pid
echo "wrk -t 2 -c $conns -d ${secs}s (POST group4.jpg, 640x427, 4 faces):"
tail -n 1 "$tmp/wrk.txt"
echo "server RSS after the run: $(rss)"
