#pragma once
// EPT walk cases (`vmmu-ept-case/1`, docs formats/x86-ept-walk.md): read a case, translate its
// guest-physical addresses through the EPT in order on the evolving memory, write the
// `vmmu-ept-result/1` answer.

#include <string>
#include <vector>

#include "case_json.hpp"
#include "memory_chunks.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kEptCaseFormat = "vmmu-ept-case/1";
inline constexpr std::string_view kEptResultFormat = "vmmu-ept-result/1";

struct EptAccess {
  Gpa gpa;
  AccessKind op = AccessKind::Read;
};

struct EptWalkCase {
  std::uint64_t eptp = 0;
  unsigned maxphyaddr = 0;  // required: there is no default width
  bool five_level = false;  // the processor supports 5-level EPT walks
  MemoryImage memory;       // host-physical ("pa"), u64 words only
  std::vector<EptAccess> accesses;

  // EPTP bit 6: accessed/dirty flags enabled -- and "memory_after" printed.
  [[nodiscard]] bool accessed_dirty() const { return (eptp & (1u << 6)) != 0; }
};

// Reads a case.
// Errors: every malformed-input rule of x86-ept-walk.md, naming the field -- missing
// maxphyaddr (or outside 32..52), missing or mistyped eptp/five_level/memory/accesses, a chunk
// that is not u64 words, misaligned or overlapping chunks, a gpa at or above 2^maxphyaddr, bad op,
// a field the page does not name (UnknownKey; "notes", "comment", "x-*" are informational).
// An EPTP the processor rejects is not malformed: every access answers invalid_eptp.
Result<EptWalkCase, CaseError> parse_ept_walk_case(const Json& doc);

using EptOutcome = Result<x86::EptTranslation<Hpa>, x86::EptFault>;

struct EptWalkRun {
  std::vector<EptOutcome> outcomes;  // one per access, in order
  SparseMemory<Hpa> memory;          // as the walks left it
};

// Translates every access in order. Errors: none (EPT faults are outcomes).
EptWalkRun run_ept_walk_case(const EptWalkCase& c);

// The same through vmmu's shadow EPT (`--mmu shadow`): the case's tables are an L1's EPT, each
// access an L2 guest-physical access; outcomes in the case's terms, as the direct walk's.
// Errors: BadValue naming the access when the shadow EPT runs out of memory.
Result<EptWalkRun, CaseError> run_ept_walk_case_shadow(const EptWalkCase& c);

// The vmmu-ept-result/1 object, compact, one line without newline.
std::string ept_walk_result_json(const EptWalkCase& c, const EptWalkRun& run);

// "ept_violation", "ept_misconfig", "invalid_eptp", "table_unreadable".
std::string_view fault_name(x86::EptFaultKind kind);

}  // namespace vmmu::cli
