#!/usr/bin/env bash
# A real program traced by valgrind lackey, converted by `vmmu trace-from-lackey`, replayed by
# `vmmu run --trace`: the program writes 64 heap pages, so the replay must count at least 64
# pages written, and a cold replay faults once per page touched. Skipped (77) without valgrind.
set -euo pipefail
vmmu=$1 target=$2 work=$3
if ! command -v valgrind >/dev/null; then
  echo "valgrind is not installed: skipped"
  exit 77
fi
mkdir -p "$work"
valgrind --tool=lackey --trace-mem=yes --log-file="$work/lackey.log" "$target"
"$vmmu" trace-from-lackey "$work/lackey.log" -o "$work/target.trace"
xz -f -k "$work/target.trace"
json=$("$vmmu" run --trace "$work/target.trace.xz" --json)
field() { grep -o "\"$1\":[0-9]*" <<<"$json" | head -1 | cut -d: -f2; }
touched=$(field touched) written=$(field written) faults=$(field page_faults)
echo "touched=$touched written=$written faults=$faults"
test "$written" -ge 64
test "$faults" -eq "$touched"
