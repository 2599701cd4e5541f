#!/usr/bin/env bash
# `vmmu sweep` end to end on small generated traces: a 2 x 2 x 2 grid runs as eight `vmmu run`
# points through GNU parallel, and the merged table holds each point's exact guest faults.
# `--slurm` prints the same eight points as an array job. Skipped (77) without GNU parallel.
set -euo pipefail
vmmu=$1 work=$2
if ! command -v parallel >/dev/null; then
  echo "GNU parallel is not installed: skipped"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
cd "$work"
printf 'R a 3\nW b 1\nR 190 2\nM a 1\n' >a.trace  # pages a, b, 190: one 2 MiB region
for ((i = 0; i < 301; i++)); do printf 'W %x 1\n' $((0x1000 + 3 * i)); done >b.trace  # 301 pages, 2 regions
cat >sweep.json <<'JSON'
{"format": "vmmu-sweep/1", "traces": ["a.trace", "b.trace"], "guest_pages": ["4k", "2m"],
 "tlb": ["4", "64"], "out": "res"}
JSON
"$vmmu" sweep sweep.json --jobs 2 --json >merged.json
test "$(ls res/point-*.json | wc -l)" -eq 8
test "$(wc -l <res/jobs.txt)" -eq 8
grep -q '"format":"vmmu-report-merge/1"' merged.json
grep -q '"axis":"trace x guest-pages x tlb"' merged.json
# Points in grid order: a 4k (tlb 4, 64), a 2m, b 4k, b 2m.
grep -q '"key":"guest.page_faults","unit":"count","values":\[3,3,1,1,301,301,2,2\]' merged.json
grep -q '"key":"tlb.entries","unit":"count","values":\[4,64,4,64,4,64,4,64\]' merged.json
test -s res/plots/index.html

"$vmmu" sweep sweep.json --slurm >job.sh
grep -q '^#SBATCH --array=0-7$' job.sh
test "$(grep -c '^  [0-7]) .* run --trace .* --json > .*/res/point-000[0-7].json ;;$' job.sh)" -eq 8
bash -n job.sh
