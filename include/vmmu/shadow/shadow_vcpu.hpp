#pragma once
// One vCPU's state in the shadow MMU: its current root shadow page and the paging state it
// was loaded for. The root stays pinned while it is the vCPU's: a zap marks it invalid and
// empties it, and it is freed only when released (KVM's root_hpa and its root reference).
// Used by one thread at a time; every change goes through the MMU under its lock.

#include <optional>

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

 private:
  friend class ShadowMmu;
  ShadowMmu& mmu_;
  ShadowPage* root_ = nullptr;
  std::optional<x86::GuestPaging> paging_;  // what root_ was loaded for
};

}  // namespace vmmu::shadow
