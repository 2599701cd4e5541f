#!/usr/bin/env bash
# Every test vmmu has, as CI runs them: release, ASan+UBSan (debug, invariant checks on),
# TSan over the multi-threaded tests, a bounded libFuzzer run, and a find_package(vmmu)
# consumer built against `cmake --install`. Installs missing Debian packages first.
#   FUZZ_SECONDS=N   total fuzzing time (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

start=$SECONDS
step() { printf '\n== [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "release: build and test"
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release -j2

step "asan + ubsan: build and test"
cmake --preset asan >/dev/null
cmake --build --preset asan
ctest --preset asan -j2

step "tsan: multi-threaded tests"
cmake --preset tsan >/dev/null
cmake --build build/tsan --target stress_tests
ctest --preset tsan --no-tests=error

step "fuzz: bounded libFuzzer run"
scripts/run-fuzz.sh "${FUZZ_SECONDS:-30}"

step "install: find_package(vmmu) from a consumer project"
tests/install/check-install.sh build/release

step "all tests passed"
