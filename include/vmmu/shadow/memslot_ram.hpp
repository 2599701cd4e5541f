#pragma once
// Guest RAM as a VM's memslots back it: what the shadow MMU (ShadowMmu::create) and the shadow
// EPT MMU over L1's memslots (ShadowEptMmu::create) walk guest tables in and map to.

#include "vmmu/memory/memslots.hpp"
#include "vmmu/shadow/guest_ram.hpp"

namespace vmmu::shadow {

// The host page of a frame is the current snapshot's. Callers keep that snapshot alive across
// their use of the pointer: the shadow MMU by holding its lock, which a memslot change takes
// before the old snapshot is freed (shadow_mmu.hpp, thread safety); the shadow EPT MMU by an
// RCU read-side section around each operation. No section here: the shadow fault path would
// pay for one per table it reads.
class MemslotRam final : public GuestRam {
 public:
  explicit MemslotRam(Memslots& slots) : slots_(slots) {}
  std::byte* page(Gfn gfn) override {
    const MemslotRegion* r = slots_.find(gfn);
    return r == nullptr ? nullptr : r->host_of(gfn);
  }

 private:
  Memslots& slots_;
};

}  // namespace vmmu::shadow
