#!/usr/bin/env bash
# Run every libFuzzer target (fuzz/fuzz_NAME.c) for SECONDS (default 60)
# each and print a table: executions, executions per second, coverage at
# start and end, inputs that found new coverage, crashes.
#
#   bench/fuzz.sh [SECONDS] [NAME...]
#
# Builds the targets with clang-14, ASan and UBSan in $KEEL_FUZZ_BUILD
# (default build-fuzz; installs clang-14 if it is missing). Each target
# starts from a temporary copy of fuzz/corpus/NAME/, which is never
# written. A crash (or timeout, or leak, or out-of-memory) does not end the
# run: the target is restarted for the time left, at most 10 times. Crash
# inputs are kept in $KEEL_FUZZ_BUILD/findings/NAME/ and listed with the
# sanitizer's summary line; reproduce one with
#   $KEEL_FUZZ_BUILD/fuzz_NAME FILE
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
seconds=${1:-60}
shift || true
build=${KEEL_FUZZ_BUILD:-build-fuzz}
case $build in /*) ;; *) build=$source_dir/$build ;; esac

if ! command -v clang-14 >/dev/null; then
  echo "fuzz: installing clang-14" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq clang-14 llvm-14 >/dev/null
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
  -DKEEL_FUZZ=ON -DKEEL_SANITIZE=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target fuzz -j"$(nproc)" >/dev/null

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for src in fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    names+=("${n#fuzz_}")
  done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/keel-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$source_dir/.ci/lsan.supp

# The value of "stat::NAME: N" in a libFuzzer log, 0 if absent.
final_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1 | grep . || echo 0; }
# "cov: N" of the first line matching $1 in a log, empty if none.
cov() { grep -E "$1" "$2" | head -1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p'; }

table=()
findings=()
total_crashes=0
for name in "${names[@]}"; do
  bin=$build/fuzz_$name
  [ -x "$bin" ] || { echo "fuzz: no target $name" >&2; exit 1; }
  dir=$work/$name
  mkdir -p "$dir/corpus" "$build/findings/$name"
  cp fuzz/corpus/"$name"/* "$dir/corpus/"
  seeds=$(ls "$dir/corpus" | wc -l)
  execs=0 new=0 crashes=0 runs=0 cov_start="" cov_end=""
  start=$(date +%s)
  left=$seconds
  while [ "$left" -gt 0 ] && [ "$runs" -lt 10 ]; do
    runs=$((runs + 1))
    log=$dir/log.$runs
    # -close_fd_mask=1: the config parser's complaints go to stdout.
    (cd "$dir" && "$bin" -max_total_time="$left" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=1 \
        -artifact_prefix="$build/findings/$name/" corpus </dev/null >"$log" 2>&1) || true
    execs=$((execs + $(final_stat number_of_executed_units "$log")))
    new=$((new + $(final_stat new_units_added "$log")))
    [ -n "$cov_start" ] || cov_start=$(cov 'INITED' "$log")
    end=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    [ -z "$end" ] || cov_end=$end
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ -n "$artifact" ]; then
      crashes=$((crashes + 1))
      summary=$(grep -m1 -E '^SUMMARY:|^==[0-9]+==ERROR|runtime error|invariant broken|ALARM|out-of-memory' "$log" || echo "?")
      findings+=("$name: $artifact")
      findings+=("    $summary")
      cp "$log" "$artifact.log"
    fi
    left=$((seconds - ($(date +%s) - start)))
  done
  elapsed=$(( $(date +%s) - start ))
  [ "$elapsed" -gt 0 ] || elapsed=1
  total_crashes=$((total_crashes + crashes))
  table+=("$(printf '%-14s %12s %9s %7s %10s %9s %8s' "$name" "$execs" \
    "$((execs / elapsed))" "$seeds" "${cov_start:-?}->${cov_end:-?}" "$new" \
    "$crashes")")
done

echo
echo "keel fuzz: ${seconds}s per target, clang-14 + ASan + UBSan ($build)"
printf '%-14s %12s %9s %7s %10s %9s %8s\n' target executions exec/s seeds \
  coverage new crashes
for row in "${table[@]}"; do echo "$row"; done
if [ ${#findings[@]} -gt 0 ]; then
  echo
  echo "crash inputs (sanitizer log beside each, FILE.log):"
  for line in "${findings[@]}"; do echo "  $line"; done
fi
[ "$total_crashes" -eq 0 ]
