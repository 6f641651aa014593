#!/usr/bin/env bash
# The Python package's speed side by side with the CLI, in one run (issue 31): per-photo time
# through Python vs the CLI's own per-photo time (both on one thread), analyze_many on 2 threads
# vs 1, and the same photos through PyPI `fer`'s detect_emotions when FER=1 (its own venv,
# bench/.venv-fer, TensorFlow from PyPI: a large download).
# Usage: bench/python_api.sh [ROUNDS]   (photos: tests/fixtures/photos, repeated ROUNDS times; default 6)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds="${1:-6}"
cargo build --release --quiet
venv="$root/bench/.venv-py"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy pillow
"$venv/bin/pip" install --quiet ./python
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The photo set: every committed photo, ROUNDS times (copies, so no cache sees a repeat name).
mkdir -p "$tmp/photos"
for r in $(seq 1 "$rounds"); do
  for p in tests/fixtures/photos/*.jpg; do cp "$p" "$tmp/photos/r${r}_$(basename "$p")"; done
done
one="$tmp/one"; mkdir -p "$one"; cp tests/fixtures/photos/astronaut.jpg "$one/"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
fer_python=""
if [ "${FER:-0}" = 1 ]; then
  fer_venv="$root/bench/.venv-fer"
  [ -x "$fer_venv/bin/python" ] || python3 -m venv "$fer_venv"
  "$fer_venv/bin/pip" install --quiet fer tensorflow-cpu "setuptools<81"
  fer_python="$fer_venv/bin/python"
fi
"$venv/bin/python" bench/python_api.py "$root/target/release/ferrite" "$tmp/photos" "$one" "$fer_python"
