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

step "release: build and test"
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release -j2

step "asan + ubsan (clang): build tests and fuzz targets, test"
cmake --preset asan >/dev/null
cmake --build --preset asan
ctest --preset asan -j2

step "tsan: multi-threaded tests"
cmake --preset tsan >/dev/null
cmake --build build/tsan --target stress_tests
ctest --preset tsan --no-tests=error

step "fuzz: bounded libFuzzer run of every target (built by the asan step)"
scripts/run-fuzz.sh "${FUZZ_SECONDS:-72}"

step "install: find_package(vmmu) from a consumer project"
tests/install/check-install.sh build/release

step "all tests passed"
