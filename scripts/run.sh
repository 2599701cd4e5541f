#!/usr/bin/env bash
# The main job on its built-in default: build vmmu (release) and run the default scenario
# (samples/scenarios/default.json) -- a VM whose vCPU threads populate memory, access it at
# random, flip CR4.SMEP, run a migration dirty-logging loop and private/shared conversions --
# printing the times and MMU statistics of each phase. Extra arguments go to `vmmu run`
# (e.g. a scenario file, --json, --compare POLICY, --set NAME=VALUE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target vmmu-cli >/dev/null
exec build/release/tools/vmmu/vmmu run "$@"
