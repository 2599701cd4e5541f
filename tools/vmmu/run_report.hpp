#pragma once
// What `vmmu run` prints: a scenario run or a policy comparison, as readable text (aligned
// tables, times in milliseconds, counts with thousands separators) or as JSON
// (vmmu-run-report/1, vmmu-run-compare/1; keys in docs/scenario-format.md).

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "vmmu/sim/compare.hpp"
#include "vmmu/sim/report.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kRunReportFormat = "vmmu-run-report/1";
inline constexpr std::string_view kRunCompareFormat = "vmmu-run-compare/1";

// "262,144".
std::string with_separators(std::uint64_t n);
// A metric's value as text: "12.345 ms" for durations, "262,144" for counts.
std::string metric_text(std::uint64_t value, sim::Unit unit);

// One table per phase: its time, its own figures, the non-zero statistics.
void print_run_text(std::ostream& out, const sim::RunReport& report);
nlohmann::ordered_json run_json(const sim::RunReport& report);

// One table: a row per (phase, figure) with a non-zero value, a column per policy value (and
// their ratio when there are two).
void print_compare_text(std::ostream& out, const sim::CompareReport& report);
nlohmann::ordered_json compare_json(const sim::CompareReport& report);
// The table alone (the text above `result:`, the JSON `rows`), for replay comparisons and
// merged reports too.
void print_compare_table(std::ostream& out, const sim::CompareTable& table);
nlohmann::ordered_json compare_rows_json(const sim::CompareTable& table);

}  // namespace vmmu::cli
