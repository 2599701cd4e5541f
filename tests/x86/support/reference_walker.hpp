#pragma once
// Deliberately simple reference walkers for the randomized tests: straight from the manuals
// (Intel SDM vol. 3A 4.3-4.7 for guest paging; vol. 3C 29.3 for EPT), bit by bit, one mode
// after the other, with no engine, no formats and no precomputed tables. They update A/D bits
// with plain writes (single-threaded tests only).

#include <cstdint>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::x86::test {

struct RefResult {
  bool ok = false;
  bool gp = false;                // general protection (non-canonical)
  std::uint64_t gpa = 0;          // ok only
  std::uint64_t page_size = 0;    // ok only
  std::uint32_t error_code = 0;   // page fault only
};

RefResult reference_walk(const Registers& regs, const CpuModel& cpu, SparseMemory<Gpa>& mem, std::uint64_t gva,
                         Access access, bool update_ad);

struct RefEptResult {
  enum Kind { Ok, Violation, Misconfig, InvalidEptp } kind = Ok;
  std::uint64_t pa = 0;
  std::uint64_t page_size = 0;
  std::uint64_t exit_qualification = 0;
};

RefEptResult reference_ept_walk(std::uint64_t eptp, const EptCapabilities& caps, SparseMemory<Hpa>& mem,
                                std::uint64_t gpa, AccessKind kind);

}  // namespace vmmu::x86::test
