# Sourced by the collect_*.sh scripts: one `ferrite evaluate` of one model into a run's folder.
# measure DIR LABEL WHAT MODEL ARGS...: `$bin evaluate --model MODEL ARGS` written to
# DIR/LABEL-WHAT.txt, its evaluate.json to DIR/LABEL-WHAT.json and its confusion matrix to
# DIR/LABEL-WHAT-confusion.png; skipped when DIR/LABEL-WHAT.json is already there (a re-run after
# an interruption, or a model added to a table).
measure() {
  local here="$1" label="$2" what="$3" model="$4"
  shift 4
  [ -s "$here/$label-$what.json" ] && return 0
  local tmp
  tmp="$(mktemp -d)"
  "$bin" evaluate --model "$model" "$@" --out "$tmp" > "$here/$label-$what.txt"
  cp "$tmp/evaluate.json" "$here/$label-$what.json"
  cp "$tmp/confusion.png" "$here/$label-$what-confusion.png" 2>/dev/null || true
  rm -rf "$tmp"
}
