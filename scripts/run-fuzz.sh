#!/bin/sh
# Builds the libFuzzer targets (CMake preset `asan`: clang, ASan + UBSan, the same build as the
# sanitizer tests) and runs each for a bounded time.
# Usage: scripts/run-fuzz.sh [TOTAL_SECONDS]   (default 60, shared between the targets)
# The seed corpus is samples/; new inputs go to build/asan/fuzz/corpus/<target>/ (kept between
# runs), crashes to build/asan/fuzz/crashes/. Exit status is non-zero if a target crashed or leaked.
set -eu
total=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/asan"
out="$build/fuzz"
targets="walk_case_fuzz"

cmake --preset asan -S "$root" >/dev/null
cmake --build "$build" --target $targets -j2

count=$(echo $targets | wc -w)
per=$(( total / count ))
[ "$per" -ge 1 ] || per=1
mkdir -p "$out/crashes"
for t in $targets; do
  corpus="$out/corpus/$t"
  mkdir -p "$corpus"
  echo "== $t: ${per}s"
  # libFuzzer prints a line per new input: keep that in a log, show the verdict and stats.
  log="$out/$t.log"
  if ! "$build/tests/fuzz/$t" -max_total_time="$per" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/crashes/" -print_final_stats=1 "$corpus" "$root/samples" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "== $t: FAILED (log: $log)"
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
done
