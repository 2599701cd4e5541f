#pragma once
// `vmmu s2walk [--table] [--samples DIR] [FILE...]` (s2walk_command.cpp): arm64 stage-2 walk
// cases, as JSON results or a readable table; with no FILE, the samples in samples/s2walk/.

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "case_json.hpp"
#include "walk_table.hpp"

namespace vmmu::cli {

struct S2walkCommandOptions {
  std::vector<std::string> files;  // empty: every *.json / *.jsonl in samples_dir, sorted
  bool table = false;
  std::string samples_dir;         // empty: default_samples_dir() + "/s2walk"
};

// Runs the command: results (or the table) to `out`, one line per malformed case or unreadable
// file to `err`. Returns the exit status (exit_status.hpp).
int run_s2walk(const S2walkCommandOptions& options, std::ostream& out, std::ostream& err);

// Registers the s2walk subcommand on `app`.
void register_s2walk_command(CLI::App& app);

// Answers one parsed vmmu-s2-case/1: the compact result line (no newline).
// Errors: the CaseError naming the field when the case is malformed.
Result<std::string, CaseError> answer_s2walk_case(const Json& doc);

// One table row per access: mode "s2-4K" (the granule), address the IPA, cpl "-".
// Errors: the case is malformed.
Result<std::vector<WalkTableRow>, CaseError> s2walk_table_rows(const Json& doc, std::string_view case_name);

}  // namespace vmmu::cli
