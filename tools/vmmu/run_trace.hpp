#pragma once
// `vmmu run --trace FILE...`: trace replay (../shared/formats/page-trace.md), its options
// checked into a sim::ReplayConfig, its report as text or JSON (vmmu-replay-report/1), or with
// `--compare AXIS[=V,V...]` one table with a column per value (vmmu-replay-compare/1).

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/replay.hpp"
#include "vmmu/sim/replay_compare.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kReplayReportFormat = "vmmu-replay-report/1";
inline constexpr std::string_view kReplayCompareFormat = "vmmu-replay-compare/1";

// The options as typed (empty: not given).
struct TraceOptions {
  std::vector<std::string> traces;
  std::string mmu, guest_pages, guest_levels, tlb, dirty_log_at;
  std::vector<std::string> policies;  // NAME=VALUE, a TDP policy each (dirty-tracking=dirty-bits)
  std::string compare;                // AXIS or AXIS=V,V...
  std::string plot;                   // a directory for SVG plots and index.html
  std::string adaptive;               // WINDOW:THRESHOLD of the adaptive policy
  [[nodiscard]] bool any_replay_option() const {
    return !mmu.empty() || !guest_pages.empty() || !guest_levels.empty() || !tlb.empty() || !dirty_log_at.empty() ||
           !policies.empty() || !plot.empty() || !adaptive.empty();
  }
};

// Errors: one line naming the option and what it expects.
Result<sim::ReplayConfig, std::string> replay_config(const TraceOptions& o);

nlohmann::ordered_json replay_json(const TraceOptions& o, const sim::ReplayReport& r);
void print_replay_text(std::ostream& out, const TraceOptions& o, const sim::ReplayReport& r);
nlohmann::ordered_json replay_compare_json(const TraceOptions& o, const sim::ReplayCompareReport& r);
void print_replay_compare_text(std::ostream& out, const TraceOptions& o, const sim::ReplayCompareReport& r);

// Exit status as run_run's.
int run_trace(const TraceOptions& o, bool json, std::ostream& out, std::ostream& err);

}  // namespace vmmu::cli
