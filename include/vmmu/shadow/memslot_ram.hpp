#pragma once
// Guest RAM as a VM's memslots back it: what the shadow MMU (ShadowMmu::create) and the shadow
// EPT MMU over L1's memslots (ShadowEptMmu::create) walk guest tables in and map to.

#include "vmmu/core/rcu.hpp"
#include "vmmu/memory/memslots.hpp"
#include "vmmu/shadow/guest_ram.hpp"

namespace vmmu::shadow {

// The host page of a frame is the current snapshot's; callers that keep the pointer hold an
// RCU read-side section across its use (the MMUs' operations do).
class MemslotRam final : public GuestRam {
 public:
  explicit MemslotRam(Memslots& slots) : slots_(slots) {}
  std::byte* page(Gfn gfn) override {
    const rcu::ReadGuard rcu;
    const MemslotRegion* r = slots_.find(gfn);
    return r == nullptr ? nullptr : r->host_of(gfn);
  }

 private:
  Memslots& slots_;
};

}  // namespace vmmu::shadow
