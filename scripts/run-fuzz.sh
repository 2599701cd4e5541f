#!/bin/sh
# Builds the libFuzzer targets (CMake preset `asan`: clang, ASan + UBSan, the same build as the
# sanitizer tests) and runs each for a bounded time.
# Usage: scripts/run-fuzz.sh [TOTAL_SECONDS [TARGET...]]
#   TOTAL_SECONDS (default 72) is shared equally by the targets (default: all of them).
# Seeds: the samples/ folders and tests/fuzz/seeds/<target>/ a target reads (seeds_of below), and
# the hostile page tables image_fuzz_seeds writes to build/asan/fuzz/seeds/. New inputs go to
# build/asan/fuzz/corpus/<target>/ (kept between runs), failing inputs to build/asan/fuzz/crashes/.
# A target fails the run when it crashes (ASan, UBSan, an abort), leaks, spends more than 10 s on
# one input (-timeout), or goes past 2 GiB resident or 512 MiB in one allocation (-rss_limit_mb,
# -malloc_limit_mb); libFuzzer then exits non-zero. A whole run is killed 2 minutes after its time.
set -eu
total=${1:-72}
[ $# -gt 0 ] && shift
all="walk_case_fuzz ept_case_fuzz s2walk_case_fuzz scenario_fuzz elf_core_fuzz image_maps_fuzz trace_fuzz"
targets=${*:-$all}
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/asan"
out="$build/fuzz"
seeds="$root/tests/fuzz/seeds"

# Seed folders (libFuzzer reads them recursively) and the longest input, per target.
seeds_of() {
  case $1 in
    walk_case_fuzz) echo "$root/samples" ;;
    ept_case_fuzz) echo "$root/samples $seeds/ept_case_fuzz" ;;
    s2walk_case_fuzz) echo "$seeds/s2walk_case_fuzz" ;;
    scenario_fuzz) echo "$root/samples/scenarios $seeds/scenario_fuzz" ;;
    trace_fuzz) echo "$seeds/trace_fuzz" ;;
    elf_core_fuzz | image_maps_fuzz) echo "$out/seeds/$1" ;;
    *) echo "run-fuzz.sh: unknown target $1" >&2; exit 2 ;;
  esac
}
max_len_of() {
  case $1 in
    elf_core_fuzz | image_maps_fuzz) echo 32768 ;;  # images of a few 4 KiB tables
    *) echo 8192 ;;
  esac
}

for t in $targets; do seeds_of "$t" >/dev/null; done  # unknown names fail before the build

cmake --preset asan -S "$root" >/dev/null
cmake --build "$build" --target $targets image_fuzz_seeds -j2
"$build/tests/fuzz/image_fuzz_seeds" "$out/seeds"

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
  # shellcheck disable=SC2046  # seed folders are split on purpose
  if ! timeout -k 10 $(( per + 120 )) "$build/tests/fuzz/$t" -max_total_time="$per" -max_len="$(max_len_of "$t")" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -artifact_prefix="$out/crashes/$t-" -print_final_stats=1 \
    "$corpus" $(seeds_of "$t") >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "== $t: FAILED (log: $log)"
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
done
