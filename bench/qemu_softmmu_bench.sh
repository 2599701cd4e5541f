#!/bin/bash
# QEMU's softmmu miss + 4-level walk against vmmu's warm walk on the same tables (issue 11:
# vmmu's walk at least 5x faster). Builds the tiny guest in qemu_softmmu/ (multiboot, long
# mode, the tables of walk_bench's BM_Walk4Level_GuestMemory), runs it under TCG, and prints
# ns per miss + walk (the "invlpg x; load x" loop minus the "invlpg y; load x" loop, min over
# rounds, TSC calibrated against the host clock over the run) next to walk_bench's figure.
#
#   bench/qemu_softmmu_bench.sh [build/release]     (walk_bench from that build directory)
#
# Not part of the test run. Skips (exit 0, says why) when qemu-system-x86_64, an assembler or
# walk_bench is missing. The guest times wall clock (rdtsc): run it on a quiet machine; the
# minimum over 201 short rounds (1 ms each) is what keeps preemption out.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build/release}
walk_bench=$build/bench/walk_bench
for tool in qemu-system-x86_64 gcc ld objcopy awk; do
  if ! command -v "$tool" >/dev/null; then
    echo "qemu_softmmu_bench: skipped: $tool not found"
    exit 0
  fi
done
if [[ ! -x $walk_bench ]]; then
  echo "qemu_softmmu_bench: skipped: $walk_bench not built"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -c -o "$work/guest.o" "$here/qemu_softmmu/guest.S"
ld -m elf_x86_64 -z max-page-size=0x1000 -T "$here/qemu_softmmu/guest.ld" -o "$work/guest64.elf" "$work/guest.o"
# QEMU's multiboot loader takes 32-bit ELF only; the long-mode code inside is unaffected.
objcopy -O elf32-i386 "$work/guest64.elf" "$work/guest.elf"

# Each debugcon line stamped with the host clock (us, no fork) on arrival, for the TSC rate.
set +e
qemu-system-x86_64 -accel tcg -kernel "$work/guest.elf" -display none -serial none -monitor none -nodefaults \
  -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot |
  while IFS= read -r line; do echo "${EPOCHREALTIME/./} $line"; done >"$work/out"
status=${PIPESTATUS[0]}
set -e
if [[ $status -ne 33 ]]; then  # isa-debug-exit: (0x10 << 1) | 1
  echo "qemu_softmmu_bench: the guest did not complete (qemu exit status $status)" >&2
  cat "$work/out" >&2
  exit 1
fi

"$walk_bench" --benchmark_filter='^BM_Walk4Level_GuestMemory$' --benchmark_repetitions=5 \
  --benchmark_min_time=0.2 --benchmark_format=csv 2>/dev/null >"$work/walk.csv"

awk -v walk_csv="$work/walk.csv" '
  function hex(s,   v, i, c) { v = 0; for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c } return v }
  $2 == "N" { n = hex($3) }
  $2 == "T" { if (t0 == "") { t0 = hex($3); w0 = $1 } else { t1 = hex($3); w1 = $1 } }
  $2 == "A" { v = hex($3); if (a == "" || v < a) a = v; na++ }
  $2 == "B" { v = hex($3); if (b == "" || v < b) b = v }
  END {
    if (n == 0 || t1 == "" || na == 0) { print "qemu_softmmu_bench: incomplete guest output" > "/dev/stderr"; exit 1 }
    per_ns = (t1 - t0) / ((w1 - w0) * 1000);   # TSC ticks per host ns (stamps in us)
    miss = a / n / per_ns; hit = b / n / per_ns
    # walk_bench csv: name,iterations,real_time,cpu_time,... ; the median repetition row
    while ((getline line < walk_csv) > 0) {
      split(line, f, ",")
      if (f[1] ~ /BM_Walk4Level_GuestMemory_median/) walk = f[4] + 0
    }
    if (walk == 0) { print "qemu_softmmu_bench: no walk_bench figure" > "/dev/stderr"; exit 1 }
    printf "qemu (TCG) invlpg x; load x   %8.1f ns per iteration (min of %d rounds of %d)\n", miss, na, n
    printf "qemu (TCG) invlpg y; load x   %8.1f ns per iteration\n", hit
    printf "qemu softmmu miss + walk      %8.1f ns\n", miss - hit
    printf "vmmu warm 4-level walk        %8.1f ns (walk_bench, median of 5, CPU time)\n", walk
    printf "ratio qemu / vmmu             %8.1fx (issue 11: at least 5x)\n", (miss - hit) / walk
    printf "(guest TSC %.3f ticks per host ns over %.1f s)\n", per_ns, (w1 - w0) / 1e6
  }' "$work/out"
