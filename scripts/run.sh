#!/usr/bin/env bash
# The main job on its built-in default: build vmmu (release) and walk the sample cases in
# samples/, printing every translation as a readable table. Extra arguments go to `vmmu walk`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target vmmu-cli >/dev/null
exec build/release/tools/vmmu/vmmu walk --table "$@"
