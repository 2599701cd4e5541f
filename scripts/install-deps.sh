#!/usr/bin/env bash
# Installs the Debian packages vmmu's build, tests and tools need, only those missing.
# Why each is here: docs/architecture.md, "Dependencies".
set -euo pipefail

packages=(
  cmake ninja-build g++ clang libclang-rt-14-dev pkg-config   # build; clang: asan preset, libFuzzer
  googletest libgtest-dev libgmock-dev libbenchmark-dev        # tests, benchmarks
  libcli11-dev nlohmann-json3-dev libfmt-dev liburcu-dev       # CLI, case files, formatting, RCU
  liblzma-dev                                                  # .xz page traces (vmmu run --trace)
  qemu-system-x86 linux-image-amd64                            # real-guest image test (vmmu maps)
  chromium                                                     # plots rendered in a headless browser (test)
  parallel                                                     # vmmu sweep runs points through GNU parallel
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
