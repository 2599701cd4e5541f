#pragma once
// How a range operation may change entries, chosen by type (not a flag) so each mode's loop
// is compiled on its own:
//
//   Exclusive  the caller holds the tables' lock exclusively: no other writer and no access
//              in flight, so whole page tables are updated with plain stores (KVM without
//              KVM_PGTABLE_WALK_SHARED).
//   Shared     concurrent with faults, other Shared callers and the hardware's A/D updates:
//              every change is a compare-exchange against the value read, re-decided when it
//              loses, so a bit set meanwhile is never lost; no table is unlinked except by a
//              single compare-exchange whose child the caller retires after a lock barrier.

#include <concepts>

namespace vmmu::pt {

struct Exclusive {};
struct Shared {};

template <class M>
concept Mode = std::same_as<M, Exclusive> || std::same_as<M, Shared>;

}  // namespace vmmu::pt
