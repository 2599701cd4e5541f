#pragma once
// `vmmu run [SCENARIO.json] [--json] [--compare POLICY] [--set NAME=VALUE ...]`, or
// `vmmu run --trace FILE... [--mmu tdp|shadow] [--guest-pages 4k|2m] [--guest-levels 4|5]
// [--tlb ENTRIES[:WAYS]] [--dirty-log-at FRACTION] [--json]` (run_trace.hpp): runs a
// scenario (docs/scenario-format.md; the built-in default without a file) and prints what
// each phase did, or runs it once per value of a policy and prints them side by side.

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>
#include <vector>

#include "run_trace.hpp"

namespace vmmu::cli {

struct RunCommandOptions {
  std::string file;  // empty: the built-in default scenario
  bool json = false;
  std::string compare;            // a policy name; empty: one run
  std::vector<std::string> sets;  // NAME=VALUE overrides, applied in order
  bool progress = false;          // a progress line on `err` (when it is a terminal)
  TraceOptions trace;             // --trace FILE... and the replay's options
};

// Exit status: 0 when every check passed; 1 when a check failed (a lost dirty page, wrong
// data) or the run could not go on (host memory, MMU table memory), after the report;
// 2 for bad input (unreadable file, malformed scenario, bad --set, unknown policy), after
// one line on `err` naming it.
int run_run(const RunCommandOptions& options, std::ostream& out, std::ostream& err);

void register_run_command(CLI::App& app);

}  // namespace vmmu::cli
