#pragma once
// Replay policies side by side (`vmmu run --trace FILE... --compare AXIS[=V,V...]`): the same
// traces replayed once per value of one axis, one table with a row per figure and a column
// per value.
//
//   axis                values by default          what it sets in ReplayConfig
//   mmu                 tdp, shadow, adaptive      mmu (kMmuKinds: a new kind is one entry)
//   guest-pages         4k, 2m                     guest_page_size
//   tlb                 16, 64, 256, 1536          tlb (ENTRIES[:WAYS])
//   dirty-tracking ...  the TDP policy's values    policies (tdp::kPolicyNames; dirty-tracking
//                                                  is the dirty-logging policy)
//
// A value this build cannot replay (replay_lacks: the shadow MMU before it is reachable)
// keeps its column, empty, with a note saying why.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/compare.hpp"
#include "vmmu/sim/replay.hpp"

namespace vmmu::sim {

// "mmu, guest-pages, tlb, huge-on-dirty-log, split, recovery, roots, dirty-tracking".
std::string replay_axis_names();
// The values an axis compares by default (empty: not an axis).
std::vector<std::string> replay_axis_values(std::string_view axis);
// Sets `axis` to `value` in `c`. Errors: an unknown axis (naming the known ones) or a value
// it does not take ("expected 4k or 2m").
Status<std::string> set_replay_axis(ReplayConfig& c, std::string_view axis, std::string_view value);

struct ReplayCompareReport {
  CompareTable table;                             // phase "replay", keys of replay_metrics()
  std::vector<std::optional<ReplayReport>> runs;  // per column; none: not replayable here
  std::vector<std::string> notes;                 // "shadow: not run: ..."
};

// Replays `traces` once per value of `axis` over `config` (values empty: the axis's
// defaults). Errors: bad input (an unknown axis or value, a malformed trace), or a run's
// error prefixed with "AXIS=VALUE: ".
Result<ReplayCompareReport, ReplayError> run_replay_compare(const std::vector<std::string>& traces,
                                                            const ReplayConfig& config, std::string_view axis,
                                                            std::vector<std::string> values);

}  // namespace vmmu::sim
