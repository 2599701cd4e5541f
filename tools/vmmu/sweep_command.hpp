#pragma once
// `vmmu sweep FILE [--jobs N | --list | --slurm] [--json]`: a sweep file's points
// (sweep_file.hpp) run through GNU parallel, then merged into one table and plots
// (OUT/merged.json, OUT/plots/); or their commands listed; or a Slurm array-job script.

#include <iosfwd>
#include <string>

#include <CLI/CLI.hpp>

namespace vmmu::cli {

struct SweepOptions {
  std::string file;
  unsigned jobs = 0;  // 0: GNU parallel's default (one per core)
  bool list = false;  // print one command per point
  bool slurm = false; // print a Slurm array-job script
  bool json = false;  // the merged table as JSON
};

// `vmmu`: the program each point runs. Exit status: 0; 1 when a point or the merge failed;
// 2 for a bad sweep file or options.
int run_sweep(const SweepOptions& o, const std::string& vmmu, std::ostream& out, std::ostream& err);

void register_sweep_command(CLI::App& app);

}  // namespace vmmu::cli
