#pragma once
// One vCPU's state in the shadow MMU: its current root shadow page and the paging state it
// was loaded for, and a cache of its previous roots (KVM's prev_roots) keyed by guest root,
// PCID and role. Every root here stays pinned: a zap marks it invalid and empties it, and it
// is freed only when released (KVM's root_hpa and its root reference). A cached root comes
// back on a CR3 load or role change without a lookup; one evicted or found invalid is
// released (root_cache.cpp). Used by one thread at a time; every change goes through the MMU
// under its lock.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "vmmu/core/address.hpp"
#include "vmmu/shadow/role.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::shadow {

class ShadowMmu;
class ShadowPage;

class ShadowVcpu {
 public:
  explicit ShadowVcpu(ShadowMmu& mmu) : mmu_(mmu) {}
  ~ShadowVcpu();  // releases the root
  ShadowVcpu(const ShadowVcpu&) = delete;
  ShadowVcpu& operator=(const ShadowVcpu&) = delete;

  [[nodiscard]] ShadowMmu& mmu() { return mmu_; }
  // The current root, or null before the first load (or after unload()). Read it only while
  // no other thread changes the MMU.
  [[nodiscard]] const ShadowPage* root() const { return root_; }
  // The PCID the current root was loaded under (0 without CR4.PCIDE).
  [[nodiscard]] std::uint16_t pcid() const { return pcid_; }

  // A previous root, pinned while cached.
  struct CachedRoot {
    ShadowPage* root = nullptr;  // null: an empty slot
    Gpa guest_root;              // the guest's root table (CR3's address)
    Role role;
    std::uint16_t pcid = 0;
    // The guest flushed this PCID's translations while the root was cached: synced when it
    // is loaded again, even by a no-flush CR3 write.
    bool stale = false;
  };
  static constexpr std::size_t kPrevRoots = 3;  // KVM_MMU_NUM_PREV_ROOTS
  // Most recently left first. Read only while no other thread changes the MMU.
  [[nodiscard]] const std::array<CachedRoot, kPrevRoots>& cached_roots() const { return prev_; }

 private:
  friend class ShadowMmu;
  ShadowMmu& mmu_;
  ShadowPage* root_ = nullptr;
  std::optional<x86::GuestPaging> paging_;  // what root_ was loaded for
  std::uint16_t pcid_ = 0;
  std::array<CachedRoot, kPrevRoots> prev_{};
};

}  // namespace vmmu::shadow
