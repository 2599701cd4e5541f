#pragma once
// A sweep file (vmmu-sweep/1, docs/sweep-format.md): a grid of traces x MMU kinds x guest page
// sizes x TLB shapes x TDP policy values, expanded to one independent `vmmu run --trace` per
// point, each writing its JSON report into the sweep's results directory.
//
//   sweep.json ─► load_sweep ─► points (args, report file) ─► job lines (GNU parallel)
//                                                         └─► a Slurm array-job script

#include <string>
#include <string_view>
#include <vector>

#include "vmmu/core/result.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kSweepFormat = "vmmu-sweep/1";

struct SweepPoint {
  std::vector<std::string> args;  // after the program: run --trace FILE ... --json
  std::string report;             // OUT/point-NNNN.json
};

struct Sweep {
  std::string out;                 // the results directory (absolute)
  std::vector<SweepPoint> points;  // traces outermost, then mmu, guest pages, TLB, policies
  std::vector<std::string> notes;  // values left out ("mmu shadow: not run: ...")
};

// Errors: one line, "FILE: KEY: what is wrong" (unreadable file, not JSON, a missing or
// unknown key, a value the axis does not take, a trace that does not exist).
Result<Sweep, std::string> load_sweep(const std::string& path);

// `s` as one shell word ('...' when it holds anything but [A-Za-z0-9_./:=,+-]).
std::string shell_quote(std::string_view s);
// One point as a shell command line: `VMMU run ... --json > REPORT`.
std::string point_command(std::string_view vmmu, const SweepPoint& p);
// A Slurm array-job script running point $SLURM_ARRAY_TASK_ID of `sweep`.
std::string slurm_script(std::string_view vmmu, std::string_view sweep_file, const Sweep& sweep);

}  // namespace vmmu::cli
