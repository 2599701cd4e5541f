#pragma once
// An MMU's MMU-notifier state (KVM's mmu_invalidate_in_progress and range): how many host
// invalidations are in progress, and the hull of their ranges, which faults must not map until
// they end. Not thread-safe: the MMU keeps it under its lock.

#include "vmmu/core/address.hpp"

namespace vmmu::mmu {

class Invalidations {
 public:
  void begin(Range<Gfn> gfns) {
    // Several may overlap: one hull for all of them (as KVM keeps).
    range_ = in_progress_++ == 0 ? gfns
                                 : Range<Gfn>{gfns.begin < range_.begin ? gfns.begin : range_.begin,
                                              range_.end < gfns.end ? gfns.end : range_.end};
  }
  void end() {
    if (in_progress_ > 0) --in_progress_;
  }
  [[nodiscard]] bool any() const { return in_progress_ > 0; }
  [[nodiscard]] bool covers(Gfn gfn) const { return in_progress_ > 0 && range_.contains(gfn); }

 private:
  unsigned in_progress_ = 0;
  Range<Gfn> range_{};
};

}  // namespace vmmu::mmu
