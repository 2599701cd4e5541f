#pragma once
// `vmmu report merge REPORT.json... [--json] [--plot DIR]`: replay reports (vmmu-replay-report/1,
// one per sweep point) joined into one comparison table -- a column per report, named by the
// options that differ between them -- and its bar plots.

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/compare.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kReportMergeFormat = "vmmu-report-merge/1";

// Errors: "FILE: ..." for an unreadable file, not JSON, or not a replay report.
Result<sim::CompareTable, std::string> merge_reports(const std::vector<std::string>& files);
nlohmann::ordered_json merged_json(const sim::CompareTable& t, const std::vector<std::string>& files);

// Exit status: 0; 2 for bad input (named on `err`); 1 when the plots cannot be written.
int run_report_merge(const std::vector<std::string>& files, bool json, const std::string& plot, std::ostream& out,
                     std::ostream& err);

void register_report_command(CLI::App& app);

}  // namespace vmmu::cli
