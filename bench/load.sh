#!/usr/bin/env bash
# Load and soak test of POST /api/v1/analyze on loopback with wrk (Debian package), a real photo
# (tests/fixtures/photos/group4.jpg, 4 faces). Reports requests/s, p50/p99 latency and the
# server's memory (RSS) every tenth of the run; all through the run, a second client sends bad
# requests (oversize, announced-oversize, not an image, empty, truncated JPEG, wrong type, a
# stalled upload, an idle connection) and checks each gets its 4xx JSON answer (or is closed),
# and the hostile mix of issue 34: a 1 KB BMP that decodes to 8000x5000 (analysed or 503), a JPEG
# declaring 60000x60000 (413), a foreign Host and a foreign Origin (403). BOMBS=0 leaves the
# 8000x5000 bomb out of the rounds (the bomb-free soak that the memory is compared with).
# Usage: [BOMBS=0] bench/load.sh [SECONDS] [CONNECTIONS]   (the soak: bench/load.sh 600 8)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-30}"
conns="${2:-8}"
cd "$root"
command -v wrk >/dev/null || { echo "needs wrk (Debian: apt install wrk)"; exit 1; }
# shellcheck source=bench/serve_bg.sh
. "$root/bench/serve_bg.sh"
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
head -c 12000000 /dev/zero > "$tmp/big.bin"
cargo build --release --quiet --example hostile_inputs
"$root/target/release/examples/hostile_inputs" "$tmp/hostile" > /dev/null
head -c 30000 "$photo" > "$tmp/truncated.jpg"
hostport="${url#http://}"
hostport="${hostport%/}"
cat > "$tmp/probe.py" <<'PY'
import socket, sys
host, port = sys.argv[2].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.settimeout(18)
if sys.argv[1] == "stalled":
    s.sendall(b"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8\xff")
    print(s.recv(64).decode(errors="replace").split(" ")[1])
else:
    print("closed" if s.recv(1) == b"" else "data")
PY
bad=0
check() {
  local want="$1"; shift
  local code; code="$(curl -s -m 20 -o "$tmp/body.json" -w '%{http_code}' "$@")"
  if [ "$code" != "$want" ] || ! grep -q '"error"' "$tmp/body.json"; then
    echo "FAIL: expected $want JSON, got $code $(head -c 200 "$tmp/body.json")"; bad=$((bad + 1)); return
  fi
  [ "${quiet:-0}" = 1 ] || echo "  $want $(head -c 120 "$tmp/body.json")"
}
# An image bomb: analysed (200) or, when the decode memory is taken, 503 with a JSON error.
check_bomb() {
  local code; code="$(curl -s -m 60 -o "$tmp/body.json" -w '%{http_code}' -X POST -H 'Content-Type: image/bmp' \
    --data-binary @"$tmp/hostile/rle8-8000x5000.bmp" "${url}api/v1/analyze")"
  if [ "$code" != 200 ] && { [ "$code" != 503 ] || ! grep -q '"error"' "$tmp/body.json"; }; then
    echo "FAIL: image bomb got $code $(head -c 200 "$tmp/body.json")"; bad=$((bad + 1)); return
  fi
  [ "${quiet:-0}" = 1 ] || echo "  $code image bomb (8000x5000 from 1,080 bytes)"
}
# One round of bad requests (about 12 s: the stalled upload waits for its 408).
bad_round() {
  [ "${BOMBS:-1}" = 0 ] || check_bomb
  check 413 -X POST -H 'Content-Type: image/jpeg' --data-binary @"$tmp/hostile/jpeg-declares-60000x60000.jpg" "${url}api/v1/analyze"
  check 403 -H 'Host: attacker.example' "${url}api/v1/health"
  check 403 -X POST -H 'Origin: http://evil.example' -H 'Content-Type: image/jpeg' --data-binary @"$photo" "${url}api/v1/analyze"
  check 413 -X POST -H 'Content-Type: image/jpeg' --data-binary @"$tmp/big.bin" "${url}api/v1/analyze"
  check 413 -X POST -H 'Content-Type: image/jpeg' -H 'Content-Length: 67108864' --data-binary 'x' "${url}api/v1/analyze"
  check 415 -X POST -H 'Content-Type: image/jpeg' --data-binary 'not an image' "${url}api/v1/analyze"
  check 400 -X POST -H 'Content-Type: image/jpeg' --data-binary '' "${url}api/v1/analyze"
  check 400 -X POST -H 'Content-Type: image/jpeg' --data-binary @"$tmp/truncated.jpg" "${url}api/v1/analyze"
  check 415 -X POST -H 'Content-Type: application/json' --data-binary '{}' "${url}api/v1/analyze"
  # A stalled upload (announces 100 kB, sends 3 bytes, then nothing): 408 after the body timeout.
  local code
  code="$(timeout 20 python3 "$tmp/probe.py" stalled "$hostport" 2>&1)" || true
  if [ "$code" != 408 ]; then echo "FAIL: stalled upload got '${code}', expected 408"; bad=$((bad + 1)); fi
  # An idle connection (sends nothing): closed by the server after the header timeout.
  code="$(timeout 20 python3 "$tmp/probe.py" idle "$hostport" 2>&1)" || true
  if [ "$code" != closed ]; then echo "FAIL: an idle connection: '${code}', expected closed"; bad=$((bad + 1)); fi
}
sleep 2
echo "bad requests during the run (first round shown; the rounds repeat until the end):"
bad_round
echo "  408 stalled upload, idle connection closed"
rounds=1
deadline=$((SECONDS + secs - 16))
quiet=1
next_sample=$((SECONDS + secs / 10))
while [ "$SECONDS" -lt "$deadline" ]; do
  bad_round
  rounds=$((rounds + 1))
  if [ "$SECONDS" -ge "$next_sample" ]; then
    echo "  t=$((SECONDS))s server RSS $(rss)"
    next_sample=$((SECONDS + secs / 10))
  fi
done
wait $wrk_pid
echo "$rounds rounds of $([ "${BOMBS:-1}" = 0 ] && echo 11 || echo 12) bad requests, $bad answered wrongly"
echo "wrk -t 2 -c $conns -d ${secs}s (POST group4.jpg, 640x427, 4 faces):"
tail -n 1 "$tmp/wrk.txt"
echo "server RSS after the run: $(rss)"
[ "$bad" = 0 ]
