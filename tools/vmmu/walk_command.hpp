#pragma once
// `vmmu walk [--table] [--samples DIR] [FILE...]`: answers x86 and EPT walk cases
// (docs formats/x86-walk.md, x86-ept-walk.md), single .json cases or .jsonl batches, as JSON
// results or as a readable table. With no FILE it walks the sample cases in samples/.

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "walk_case.hpp"

#include <CLI/CLI.hpp>

#include "batch.hpp"
#include "walk_table.hpp"

namespace vmmu::cli {

struct WalkCommandOptions {
  std::vector<std::string> files;  // empty: every *.json / *.jsonl in samples_dir, sorted
  bool table = false;
  std::string samples_dir;         // empty: default_samples_dir()
  std::string mmu;                 // "" (walk directly), "tdp" or "shadow"
  unsigned host_levels = 0;        // --host-levels (0: not given)
};

// The samples directory: $VMMU_SAMPLES if set, else the source tree's samples/ (compiled in).
std::string default_samples_dir();

// The case files in `dir`: *.json and *.jsonl, sorted by name (empty if unreadable).
std::vector<std::string> sample_files(const std::string& dir);

// What walk and s2walk do: answer `files` -- or with none the sample cases in `samples_dir`
// -- as JSON lines (answer) or one table (`table`, rows_of), and return the exit status. No
// file and no samples: one line on `err` ("vmmu COMMAND: no FILE given, ... (`hint`)"), 2.
int answer_case_files(const std::vector<std::string>& files, const std::string& samples_dir, std::string_view command,
                      std::string_view hint, bool table, const CaseAnswerer& answer, CaseTableRows rows_of,
                      std::ostream& out, std::ostream& err);

// Runs the command. Results go to `out`; one line per malformed case or unreadable file to `err`.
// Returns the exit status (exit_status.hpp): 0 when every case was answered, 2 otherwise.
// Errors: none thrown; malformed input is reported as described in batch.hpp.
int run_walk(const WalkCommandOptions& options, std::ostream& out, std::ostream& err);

// Adds the `walk` subcommand to `app`.
void register_walk_command(CLI::App& app);

}  // namespace vmmu::cli
