#pragma once
// x86 guest walk cases (`vmmu-walk-case/1`, docs formats/x86-walk.md): read a case, walk its
// accesses in order on its evolving memory, write the `vmmu-walk-result/1` answer.

#include <optional>
#include <string>
#include <vector>

#include "case_json.hpp"
#include "memory_chunks.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/registers.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::cli {

inline constexpr std::string_view kX86CaseFormat = "vmmu-walk-case/1";
inline constexpr std::string_view kX86ResultFormat = "vmmu-walk-result/1";

// Physical-address widths a case may give (x86 and EPT): the architecture's 52 at most;
// below 32 no real processor, and 32-bit paging could then point past the machine.
inline constexpr unsigned kMinMaxphyaddr = 32;
inline constexpr unsigned kMaxMaxphyaddr = 52;

struct X86Access {
  Gva gva;
  AccessKind op = AccessKind::Read;
  unsigned cpl = 0;  // 0 or 3
};

struct X86WalkCase {
  x86::Registers regs;
  unsigned maxphyaddr = 52;
  MemoryImage memory;
  std::vector<X86Access> accesses;
};

// Reads a case (its "format" already known to be vmmu-walk-case/1 or checked here).
// Errors: every malformed-input rule of x86-walk.md, naming the field -- missing or mistyped
// fields, numbers out of range (maxphyaddr outside 32..52, pkru above 32 bits), bad op or cpl,
// misaligned or overlapping chunks, a gva wider than 32 bits outside long mode, and any field
// or register name the page does not list (UnknownKey; "mode", "notes", "comment", "x-*" are
// informational).
Result<X86WalkCase, CaseError> parse_x86_walk_case(const Json& doc);

// The registers of a `regs` object (cr0, cr3, cr4, efer, rflags, pkru), over the values
// already in `regs` (absent ones keep them). Shared by walk cases and maps' --regs files.
// Errors: UnknownKey (a register name x86-walk.md does not list), BadNumber, OutOfRange
// (pkru above 32 bits).
Status<CaseError> read_x86_registers(const Json& regs_object, x86::Registers& regs);

// The case's "maxphyaddr" (32..52), `fallback` when absent (none: required).
// Errors: Missing, BadNumber, OutOfRange.
Result<unsigned, CaseError> read_maxphyaddr(const Json& doc, std::optional<unsigned> fallback);

using X86Outcome = Result<x86::Translation, x86::WalkFault>;

struct X86WalkRun {
  x86::PagingMode mode = x86::PagingMode::Off;
  std::vector<X86Outcome> outcomes;  // one per access, in order
  SparseMemory<Gpa> memory;          // as the walks left it
};

// Walks every access in order; A/D updates of one access are seen by the next.
// Errors: none (guest faults are outcomes).
X86WalkRun run_x86_walk_case(const X86WalkCase& c);

// The same inside a VM under the TDP MMU (x86-walk.md, "Through an MMU"): the case's memory
// is the VM's, in one-page memslots added as accesses reach frames; one vCPU with the case's
// registers walks the guest's tables through the TDP tables and makes each access through them.
// `host_levels`: 4 or 5 (0: 4, or 5 when maxphyaddr exceeds the 48 bits 4 levels translate).
// Errors (CaseError): host levels too few for the case's maxphyaddr ("maxphyaddr"); an access
// the VM could not complete (its exit named).
Result<X86WalkRun, CaseError> run_x86_walk_case_tdp(const X86WalkCase& c, unsigned host_levels);

// The same inside a VM under the shadow MMU (x86-walk.md, "Through an MMU"): the case's memory
// is guest RAM, each access goes through the modelled hardware and the shadow fault path.
// `host_levels`: 4 or 5 (0: 4, and always 5 for a 5-level guest).
// Errors (CaseError naming "regs"): a PAE guest (not shadowed yet); an access the
// shadow MMU could not complete (its exit named).
Result<X86WalkRun, CaseError> run_x86_walk_case_shadow(const X86WalkCase& c, unsigned host_levels);

// The vmmu-walk-result/1 object, compact, one line without newline.
std::string x86_walk_result_json(const X86WalkCase& c, const X86WalkRun& run);

// "page_fault", "general_protection", "table_unreadable".
std::string_view fault_name(x86::WalkFaultKind kind);

// "P|W|U|RSVD|I|PK" subset of a page-fault error code, low bit first ("0" when none).
std::string decode_error_code(std::uint32_t error_code);

}  // namespace vmmu::cli
