#!/usr/bin/env bash
# Print the path of a real video clip with talking faces at several angles: Megamind.avi
# (720x528, 24 fps, 11.3 s) from Debian's opencv-doc package (examples/data), fetched with
# `apt-get download` into a cache folder the first time and reused after.
# Usage: bench/clip.sh  ->  /path/to/Megamind.avi
set -euo pipefail
cache="${FERRITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrite}/opencv-doc"
clip="$cache/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
if ! [ -f "$clip" ]; then
  mkdir -p "$cache"
  (cd "$cache" && { apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc >/dev/null; }; })
  deb="$(ls "$cache"/opencv-doc_*.deb | head -n 1)"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache" ./usr/share/doc/opencv-doc/examples/data/Megamind.avi
  rm -f "$deb"
fi
echo "$clip"
