#!/usr/bin/env bash
# Build every fuzz target (cargo-fuzz, libFuzzer, AddressSanitizer; nightly toolchain), write
# the seed corpora (examples/fuzz_seeds.rs: from the committed photos and tiny generated runs),
# run each target for SECONDS (two at a time on a 2-core machine) and print executions, speed
# and the outcome per target. Any crash, leak or timeout fails the script; the input that
# caused it is in fuzz/artifacts/TARGET/ (fixed findings move to fuzz/regressions/TARGET/, which
# every run replays). Corpora grow in fuzz/corpus/TARGET/ (not committed).
# Usage: fuzz/run.sh SECONDS [TARGET...]     e.g. fuzz/run.sh 600 (the full run), fuzz/run.sh 5 (CI smoke)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
cd "$root"
command -v cargo-fuzz >/dev/null || { echo "needs cargo-fuzz: cargo install cargo-fuzz --locked"; exit 1; }
cargo build --release --quiet --example fuzz_seeds
seeds="$root/fuzz/corpus/.seeds"
rm -rf "$seeds"
"${CARGO_TARGET_DIR:-$root/target}/release/examples/fuzz_seeds" "$seeds" >/dev/null
# 16 codegen units (cargo-fuzz's default is 1, with which burn's CPU kernels alone took over 16
# minutes of one core with the sanitizer): a crate compiled alone can use every core; the
# targets run somewhat slower per input (cargo fuzz build --help). FUZZ_CODEGEN_UNITS overrides.
cargo +nightly fuzz build --fuzz-dir fuzz --codegen-units "${FUZZ_CODEGEN_UNITS:-16}" 2>&1 | grep -E "^(error|warning: unused)" || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
# cargo puts everything under CARGO_TARGET_DIR where it is set (cargo-fuzz's fuzz/target otherwise).
bin="${CARGO_TARGET_DIR:-$root/fuzz/target}/x86_64-unknown-linux-gnu/release"
jobs="${FUZZ_JOBS:-$(nproc)}"
logs="$root/fuzz/logs"
mkdir -p "$logs"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(date -u +%F) | $secs s per target, $jobs at a time"
run_one() {
  local t="$1"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/regressions/$t"
  local status=0
  # The FER2013 CSV's rows are ~9 kB: longer inputs only repeat rows.
  local max_len=()
  [ "$t" = fer2013_csv ] && max_len=(-max_len=12000)
  # -rss_limit_mb: a decoder that tries to allocate without bound is a finding too.
  # -detect_leaks=0: LeakSanitizer's scan after every input that allocates (burn's tensor
  # pools keep allocations alive on purpose) made the model targets 7x slower; memory errors
  # are still caught by AddressSanitizer, and unbounded growth by -rss_limit_mb.
  # fuzz/regressions/TARGET: committed inputs that once crashed a target (fixed since).
  "$bin/$t" "fuzz/corpus/$t" "$seeds/$t" "fuzz/regressions/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -detect_leaks=0 "${max_len[@]}" \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" > "$logs/$t.log" 2>&1 || status=$?
  echo "$status" > "$logs/$t.status"
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
failed=0
printf '| %-14s | %10s | %12s | %8s | %8s | %s |\n' target seconds executions "exec/s" corpus result
printf '|%s|\n' "----------------|------------|--------------|----------|----------|--------"
for t in "${targets[@]}"; do
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -n 1)"
  corpus="$(find "fuzz/corpus/$t" -type f | wc -l)"
  status="$(cat "$logs/$t.status")"
  result="ok"
  if [ "$status" != 0 ]; then
    result="FAILED (exit $status, see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
    failed=1
  fi
  printf '| %-14s | %10s | %12s | %8s | %8s | %s |\n' "$t" "$secs" "${execs:-?}" "${speed:-?}" "$corpus" "$result"
done
exit "$failed"
