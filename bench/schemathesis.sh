#!/usr/bin/env bash
# API contract test: schemathesis (PyPI, pinned) against the served /api/openapi.json of a
# running `ferrite serve` on loopback, every check (no 5xx, status codes, content types and
# bodies match the schema, invalid requests refused), with tests/api/schemathesis.toml.
# Usage: bench/schemathesis.sh [MAX_EXAMPLES]   (default 100 per operation)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
examples="${1:-100}"
cd "$root"
venv="$root/bench/.venv-schemathesis"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi
# shellcheck source=bench/serve_bg.sh
. "$root/bench/serve_bg.sh"
echo "schemathesis $("$venv/bin/schemathesis" --version | awk '{print $NF}') against ${url}api/openapi.json, $examples examples per operation"
"$venv/bin/schemathesis" --config-file tests/api/schemathesis.toml run "${url}api/openapi.json" \
  --checks all --max-examples "$examples" --seed 1
kill -0 "$pid" && echo "server still running after the run: yes"
