#!/usr/bin/env bash
# Where the server's memory goes after image bombs (issue 45), quick form of the soak: `ferrite
# serve` under wrk load (POST group4.jpg, 8 connections) while one client sends the 1 KB BMP
# that decodes to 8000x5000 again and again; prints the server's RSS (MiB) after each bomb, at
# the end and 15 s later, and the requests per second. ARENAS="16 4 2" runs it once per glibc
# arena cap (MALLOC_ARENA_MAX in the environment, which `ferrite serve` then leaves as it is;
# glibc's own default is 8 per core, 16 on 2 cores); "server" (the default) leaves the variable
# unset, so the server's own cap applies (server::ALLOCATOR_ARENAS).
# Usage: [ARENAS="16 4 2 server"] bench/bomb_memory.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-90}"
cd "$root"
cargo build --release --quiet
cargo build --release --quiet --example hostile_inputs
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F) | ${secs}s per run"
for arenas in ${ARENAS:-server}; do
  tmp="$(mktemp -d)"
  if [ "$arenas" = server ]; then
    env -u MALLOC_ARENA_MAX "$root/target/release/ferrite" serve --addr 127.0.0.1:0 > "$tmp/serve.log" 2>&1 &
  else
    MALLOC_ARENA_MAX="$arenas" "$root/target/release/ferrite" serve --addr 127.0.0.1:0 > "$tmp/serve.log" 2>&1 &
  fi
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
  for _ in $(seq 100); do grep -q "serving on" "$tmp/serve.log" && break; sleep 0.1; done
  url="$(grep -o 'http://[^ ]*' "$tmp/serve.log" | head -1)"
  rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }
  photo="$root/tests/fixtures/photos/group4.jpg"
  "$root/target/release/examples/hostile_inputs" "$tmp/hostile" > /dev/null
  curl -s -o /dev/null -X POST -H 'Content-Type: image/jpeg' --data-binary @"$photo" "${url}api/v1/analyze"
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "image/jpeg"\nlocal f = io.open("%s", "rb"); wrk.body = f:read("*all"); f:close()\n' "$photo" > "$tmp/post.lua"
  warm="$(rss)"
  wrk -t 2 -c 8 -d "${secs}s" --timeout 30s -s "$tmp/post.lua" "${url}api/v1/analyze" > "$tmp/wrk.txt" &
  w=$!
  end=$((SECONDS + secs - 5)); n=0; line=""
  while [ "$SECONDS" -lt "$end" ]; do
    curl -s -m 60 -o /dev/null -X POST -H 'Content-Type: image/bmp' --data-binary @"$tmp/hostile/rle8-8000x5000.bmp" "${url}api/v1/analyze"
    n=$((n + 1)); line="$line $(rss)"
  done
  wait $w
  at_end="$(rss)"; sleep 15
  echo "arenas $arenas: warm $warm MiB; after each of $n bombs:$line; end $at_end, 15 s later $(rss) MiB; $(grep Requests/sec "$tmp/wrk.txt" | tr -s ' ')"
  kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"
done
