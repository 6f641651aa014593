#!/usr/bin/env bash
# Every hostile-input probe of issue 34 in one run, with its time and memory: the command line on
# files that declare huge images, devices, FIFOs and symlink loops; the server (under a 2 GB
# address-space cap) against image bombs over HTTP and WebSocket, a ping flood, clients that do
# not read, foreign Host/Origin headers, one client's 1,000 connections; /video_feed on a source
# ffmpeg cannot decode. The table it prints is docs/RELIABILITY.md's "Hostile inputs".
# Usage: bench/hostile.sh      (about 3 minutes; needs ffmpeg, prlimit, python3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --quiet --bin ferrite --example hostile_inputs
tmp="$(mktemp -d /tmp/ferrite-hostile-XXXX)"
trap 'rm -rf "$tmp"' EXIT
"$root/target/release/examples/hostile_inputs" "$tmp/files" > "$tmp/files.txt"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F) | ferrite $(git rev-parse --short HEAD)"
exec python3 "$root/bench/hostile.py" "$root/target/release/ferrite" "$tmp"
