#pragma once
// Policies side by side: the same scenario run once per value of one policy, and one table
// with a row per (phase, figure) and a column per value.
//
//   run_compare(scenario, "huge-on-dirty-log")
//       ├─ run with huge-on-dirty-log = write-protect ─┐
//       └─ run with huge-on-dirty-log = drop ──────────┴─► CompareTable
//                                  phase     figure   write-protect   drop
//                                  read-all  faults               0   262,144

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/report.hpp"
#include "vmmu/sim/runner.hpp"

namespace vmmu::sim {

struct CompareRow {
  std::string phase;
  std::string key;
  std::string label;
  Unit unit = Unit::Count;
  bool result = false;                               // a phase's own figure or time (always shown), not a statistic
  std::vector<std::optional<std::uint64_t>> values;  // per policy value; none: the run lacks it
  // True when every value present is zero, and one is (a run not made has no value).
  [[nodiscard]] bool all_zero() const;
};

struct CompareTable {
  std::string policy;
  std::vector<std::string> values;  // column order
  std::vector<CompareRow> rows;     // phases in scenario order; figures in report order
};

struct CompareReport {
  CompareTable table;
  std::vector<RunReport> runs;  // one per value, in column order
  [[nodiscard]] bool ok() const;
};

// Puts `metrics` of `phase` in column `column` of `t` (its values named): a row is made the first
// time a (phase, key) appears, after the phase's rows so far (else at the end); the first
// `results` metrics are results.
void add_to_column(CompareTable& t, std::size_t column, std::string_view phase, const std::vector<Metric>& metrics,
                   std::size_t results);

// The table over reports of the same scenario (rows: the union of their figures, in the order
// they first appear).
CompareTable compare_table(std::string policy, std::vector<std::string> values, const std::vector<RunReport>& runs);

// What --compare may vary: a policy (tdp::kPolicyNames), "mmu" (vm.mmu: tdp, shadow, adaptive) or
// "shadow-unsync" (vm.shadow.unsync: on, off -- unsync pages against emulating every write).
inline constexpr std::string_view kCompareMmu = "mmu";
inline constexpr std::string_view kCompareUnsync = "shadow-unsync";
// "nested": the phases run directly in the VM, then in an L2 guest of it (vm.nested as the
// scenario gives it, else its defaults): columns direct, nested.
inline constexpr std::string_view kCompareNested = "nested";
// The values of `dimension` in column order; empty when it is none of them.
std::vector<std::string_view> compare_values(std::string_view dimension);
// "huge-on-dirty-log, split, recovery, roots, dirty-tracking, mmu, shadow-unsync, nested".
std::string compare_dimensions();

// Runs `scenario` once per value of `policy` (one of tdp::kPolicyNames, or kCompareMmu).
// RunOptions::progress is told which value runs through `Progress::variant`.
// Errors: an unknown policy name (naming the known ones), shadow-unsync under vm.mmu tdp, or a
// run's error prefixed with "policy=value: ".
Result<CompareReport, std::string> run_compare(const Scenario& scenario, std::string_view policy,
                                               const RunOptions& options = {});

}  // namespace vmmu::sim
