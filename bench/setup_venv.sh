#!/usr/bin/env bash
# Create bench/.venv with the reference frameworks from PyPI (by name only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet "tensorflow-cpu==2.21.*" "torch==2.15.*" numpy
