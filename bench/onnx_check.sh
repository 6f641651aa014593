#!/usr/bin/env bash
# Check `ferrite export --format onnx` with other tools: the ONNX checker (full check) and
# onnxruntime must accept the embedded model's export, and onnxruntime's probabilities for real
# val faces (and their mirror images, as a batch of 2) must match `ferrite predict`'s.
# Installs onnx, onnxruntime and pillow from PyPI into bench/.venv.
# Usage: bench/onnx_check.sh [DATA_ROOT]   (default ../shared/data/fer2013)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-${FERRITE_DATA:-$root/../shared/data/fer2013}}"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/ferrite"
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install --quiet onnx onnxruntime pillow numpy
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$bin" export --model models/default.ferrite --out "$tmp/default.onnx"
# PNG copies (made by Pillow), so both sides read the same pixels: JPEG decoders differ by +-1.
faces=()
for c in angry happy surprise; do
  all=("$data/val/$c"/*)   # a glob, not `ls | head`: under pipefail head's early exit can kill ls
  src="${all[0]}"
  bench/.venv/bin/python -c 'import sys; from PIL import Image; Image.open(sys.argv[1]).convert("L").save(sys.argv[2])' "$src" "$tmp/$c.png"
  faces+=("$tmp/$c.png")
done
"$bin" predict --json "${faces[@]}" > "$tmp/predict.jsonl"
bench/.venv/bin/python - "$tmp/default.onnx" "$tmp/predict.jsonl" <<'PY'
import json, sys
import numpy as np, onnx, onnxruntime as ort
from PIL import Image
model = onnx.load(sys.argv[1])
onnx.checker.check_model(model, full_check=True)
labels = {p.key: p.value for p in model.metadata_props}["labels"].split(",")
session = ort.InferenceSession(sys.argv[1])
worst = 0.0
for line in open(sys.argv[2]):
    row = json.loads(line)
    x = np.asarray(Image.open(row["image"]).convert("L"), dtype=np.float32)[None, None] / 255.0
    p = session.run(None, {"face": np.concatenate([x, x[:, :, :, ::-1]])})[0]
    want = np.array([row["probabilities"][l] for l in labels])
    worst = max(worst, float(np.abs(p[0] - want).max()))
    print(f"{row['image']}: ferrite {row['label']}, onnxruntime {labels[int(p[0].argmax())]} (mirror: {labels[int(p[1].argmax())]})")
print(f"onnx checker: ok; onnxruntime {ort.__version__}; largest probability difference vs ferrite predict: {worst:.2e}")
assert worst < 1e-4, "onnxruntime disagrees with ferrite"
PY
