#pragma once
// What every MMU that owns its tables shares (the TDP MMU, arm64 stage 2, the shadow MMU):
// the outcome of a fault and the rule for whether a leaf lets an access through. The verbs
// are the engine's (pt::OwnedTables): map, unmap (KVM: zap), write_protect, age, split,
// collapse (KVM: recover huge pages); the lock is core/reader_lock.hpp's ReaderLock --
// faults shared, structural operations exclusive.

#include <cstdint>
#include <string_view>

#include "vmmu/core/access.hpp"
#include "vmmu/pt/owned_format.hpp"

namespace vmmu::mmu {

// What a fault turned into. Not an error: the vCPU retries, or the VMM emulates / harvests.
enum class FaultAction : std::uint8_t {
  Mapped,      // a new leaf maps the address; the vCPU retries the access
  Relaxed,     // the existing leaf gained permissions (write, exec, the access flag)
  Spurious,    // the leaf already allowed the access (another vCPU fixed it)
  Retry,       // raced with an invalidation or a memslot update: access again
  Mmio,        // no memslot, or a write to a read-only slot: emulate
  RingFull,    // the vCPU's dirty ring is full: harvest and reset, then access again
  OutOfRange,  // address beyond what the tables translate
};
std::string_view to_string(FaultAction a);

struct FaultOutcome {
  FaultAction action = FaultAction::Spurious;
  unsigned level = 0;      // level of the leaf mapping the address afterwards (Mapped / Relaxed / Spurious)
  std::uint64_t size = 0;  // bytes that leaf maps
  bool dirtied = false;    // the page was logged dirty (slot bitmap or the vCPU's ring)
};

// Whether software's access flag matters: arm64 stage 2 faults on a leaf whose AF is clear
// (no hardware AF management modelled); x86 sets A in hardware and never faults on it.
enum class AccessFlag : std::uint8_t { SetByHardware, FaultsWhenClear };

// Whether a leaf with `a` lets `access` through without a fault.
[[nodiscard]] constexpr bool allows(const pt::LeafAttrs& a, Access access, AccessFlag af) {
  return (af == AccessFlag::SetByHardware || a.accessed) && a.allows(access);
}

}  // namespace vmmu::mmu
