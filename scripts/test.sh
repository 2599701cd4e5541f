#!/usr/bin/env bash
# Every test vmmu has, as CI runs them: release, ASan+UBSan (clang, debug, invariant checks on),
# TSan over the multi-threaded tests, a bounded libFuzzer run (its targets come from the ASan
# build), and a find_package(vmmu) consumer built against `cmake --install`. Installs missing
# Debian packages first.
#   FUZZ_SECONDS=N   total fuzzing time, shared by the fuzz targets (default 72)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# Each step prints when it starts: wall seconds, and CPU seconds (user + system) of every
# command finished so far, which stays comparable when the machine is shared.
start=$SECONDS
tick=$(getconf CLK_TCK)
cpu() { local s; s=$(</proc/$$/stat); s=${s##*) }; set -- $s; echo $(( (${14} + ${15}) / tick )); }
step() { printf '\n== [%4ds wall, %5ds cpu] %s\n' "$((SECONDS - start))" "$(cpu)" "$*"; }

# ctest through a log, to count the tests that skipped (GTEST_SKIP: no /dev/kvm, no QEMU...):
# ctest lists them as "(Skipped)" and the summary at the end names them, so a skip never reads
# as a pass. VMMU_REQUIRE_KVM=1 makes the KVM tests fail instead of skipping.
skipped=""
run_ctest() {
  local preset=${1#--preset=} log
  log=$(mktemp)
  ctest "$@" 2>&1 | tee "$log"
  local names
  names=$(sed -nE 's/^[[:space:]]*[0-9]+ - (.+) \(Skipped\)$/\1/p' "$log")
  skipped+="  $preset: $(grep -c . <<<"$names" || true) skipped${names:+ ($(paste -sd, - <<<"$names" | sed 's/,/, /g'))}"$'\n'
  rm -f "$log"
}

step "release: build and test"
cmake --preset release >/dev/null
cmake --build --preset release
run_ctest --preset=release -j2

step "asan + ubsan (clang): build tests and fuzz targets, test"
cmake --preset asan >/dev/null
cmake --build --preset asan
run_ctest --preset=asan -j2

step "tsan: multi-threaded tests"
cmake --preset tsan >/dev/null
cmake --build build/tsan --target stress_tests
run_ctest --preset=tsan --no-tests=error

step "fuzz: bounded libFuzzer run of every target (built by the asan step)"
scripts/run-fuzz.sh "${FUZZ_SECONDS:-72}"

step "install: find_package(vmmu) from a consumer project"
tests/install/check-install.sh build/release

step "all tests passed"
printf 'tests skipped:\n%s' "$skipped"
