#pragma once
// arm64 stage-2 walk cases (`vmmu-s2-case/1`, formats/arm64-s2-walk.md): read a case,
// translate its IPAs in order on the evolving memory (HA/HD updates of one access are seen by
// the next), write the `vmmu-s2-result/1` answer.

#include <string>
#include <string_view>
#include <vector>

#include "case_json.hpp"
#include "memory_chunks.hpp"
#include "vmmu/arm64/registers.hpp"
#include "vmmu/arm64/walk.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kS2CaseFormat = "vmmu-s2-case/1";
inline constexpr std::string_view kS2ResultFormat = "vmmu-s2-result/1";

struct S2Access {
  Ipa ipa;
  AccessKind op = AccessKind::Read;
};

struct S2WalkCase {
  arm64::Stage2 stage2;  // decoded from regs and pa_bits
  MemoryImage memory;    // physical ("pa"), u64 words only
  std::vector<S2Access> accesses;
};

// Reads a case.
// Errors: a missing or mistyped format/arch/pa_bits/regs/memory/accesses field; pa_bits other
// than 32, 36, 40, 42, 44, 48, 52; a VTCR_EL2 setting a bit that is RES0 here (DS below
// pa_bits 52, SL2 without DS and 4K) or TG0 = 0b11 (reserved) -- all naming the field; bad
// chunks; an op other than read/write; a field the page does not name (UnknownKey; "notes",
// "comment", "x-*" are informational). A VTCR_EL2 the architecture defines as faulting is not
// malformed: every access then answers a translation fault at level 0.
Result<S2WalkCase, CaseError> parse_s2_walk_case(const Json& doc);

using S2Outcome = Result<arm64::Translation, arm64::Fault>;

struct S2WalkRun {
  std::vector<S2Outcome> outcomes;  // one per access, in order
  SparseMemory<Hpa> memory;         // as the walks left it
};

// Translates every access in order. Errors: none (stage-2 faults are outcomes).
S2WalkRun run_s2_walk_case(const S2WalkCase& c);

// The vmmu-s2-result/1 object, compact, one line without newline.
std::string s2_walk_result_json(const S2WalkCase& c, const S2WalkRun& run);

}  // namespace vmmu::cli
