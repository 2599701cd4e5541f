#pragma once
// One case of `vmmu walk`: an x86 guest walk case or an EPT case, told apart by "format".

#include <optional>
#include <string>
#include <string_view>

#include "case_json.hpp"
#include "vmmu/mmu/mmu.hpp"

namespace vmmu::cli {

enum class WalkCaseKind : std::uint8_t { X86, Ept };

// The kind of case `doc` is, by its "format".
// Errors: Missing, WrongType, BadValue (a format `vmmu walk` does not read).
Result<WalkCaseKind, CaseError> walk_case_kind(const Json& doc);

// How x86 guest walk cases run (x86-walk.md, "Through an MMU"): walked directly, or inside a
// VM under the TDP or the shadow MMU with host tables of `host_levels` levels (0: the default,
// see run_x86_walk_case_tdp / _shadow).
struct WalkThrough {
  std::optional<mmu::MmuKind> mmu;
  unsigned host_levels = 0;
};

// Reads, walks and answers one case: its vmmu-walk-result/1 or vmmu-ept-result/1 object as one
// compact line (no newline). EPT cases are always walked directly.
// Errors: the case is malformed (see parse_x86_walk_case, parse_ept_walk_case); through an
// MMU, a guest it does not run (shadow: PAE, not yet) or an access it failed (named).
Result<std::string, CaseError> answer_walk_case_through(const Json& doc, const WalkThrough& through);
// The same, walked directly (a CaseAnswerer).
Result<std::string, CaseError> answer_walk_case(const Json& doc);

}  // namespace vmmu::cli
