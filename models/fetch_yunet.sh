#!/usr/bin/env bash
# Reproduce models/face_detection_yunet_2023mar.onnx from its author's public repository and
# check it. The same bytes are opencv/opencv_zoo's models/face_detection_yunet/
# face_detection_yunet_2023mar.onnx, stored there as a Git-LFS object whose id is this sha256.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
commit=2b5e61dee21441ef4676505f835ab63ee53bae1e
curl -fsSL -o "$here/face_detection_yunet_2023mar.onnx" \
  "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/$commit/onnx/yunet_s_640_640.onnx"
echo "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4  $here/face_detection_yunet_2023mar.onnx" | sha256sum -c -
